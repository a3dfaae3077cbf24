/**
 * Replacing a file atomically, as upstream's subnet.env writer (google/renameio)
 * does: a temporary file in the same directory, written, fsynced, renamed
 * over the target. A new file gets mode 0644 exactly, whatever the umask; an
 * existing file keeps its mode. Missing parent directories are created.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Atomically replaces `file` with `content`. */
export function writeFileAtomic(file: string, content: string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  let mode = 0o644;
  try {
    const st = fs.statSync(file);
    if (st.isFile()) mode = st.mode & 0o7777;
  } catch {
    /* a new file */
  }
  const tmp = path.join(dir, `.${path.basename(file)}${randomBytes(8).readBigUInt64BE() >> 1n}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.writeSync(fd, content);
    fs.fchmodSync(fd, mode); // explicit: the umask must not change it
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
