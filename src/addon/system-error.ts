/** The system-error shape every face of the addon throws (native/addon/napi_util.cc, ThrowSystemError). */
export interface NativeSystemError {
  /** "<op>: <strerror> (<code>)" */
  message: string;
  /** The failing call, e.g. "ioctl TUNSETIFF". */
  syscall: string;
  errno: number;
  /** The errno name, e.g. "EPERM". */
  code: string;
}

export function isNativeSystemError(e: unknown): e is NativeSystemError {
  return typeof e === 'object' && e !== null && typeof (e as NativeSystemError).syscall === 'string' && typeof (e as NativeSystemError).code === 'string';
}
