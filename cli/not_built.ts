/**
 * The error a subcommand raises while its engine is not built yet: the CLI prints it as one line and
 * exits 2.
 * @module
 */

/** Raised by a subcommand whose engine does not exist yet. */
export class NotBuiltError extends Error {
  constructor(command: string, issue: string) {
    super(`'${command}' is not built yet in this version of uer-ts (${issue}); the flags parsed fine`);
    this.name = "NotBuiltError";
  }
}
