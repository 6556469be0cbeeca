/**
 * Reads the text file a flag names (`--test_path`, `--train_path`, …): a missing file is one error
 * naming the flag and the path, with a hint. Not browser compatible (Deno file reads).
 * @module
 */

/**
 * The text of the file `--<flag>` names.
 *
 * @example
 * ```ts
 * const text = await readFlagFile("test_path", opts.testPath);
 * ```
 */
export async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot read --${flag} "${path}": no such file\n  hint: check the path`);
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new TypeError(`Cannot read --${flag} "${path}": it is a folder\n  hint: pass a file`);
    }
    throw e;
  }
}
