/**
 * Helpers for errors: the text of anything thrown, and a base class for the
 * project's typed errors (the subclass's name, an optional cause).
 */

/** The message of an Error, or the text of anything else that was thrown. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Base of the project's error classes: `name` is the subclass's name, so
 * `class FooError extends NamedError {}` needs no constructor of its own.
 */
export class NamedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
