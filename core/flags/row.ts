/**
 * What a flag table row is, and the option types derived from a table. Each subcommand declares its
 * flags once, as one `as const` table keyed by UER-py's flag name (core/flags/<subcommand>.ts); the
 * camelCase options object a subcommand receives, its TypeScript type and its defaults all come from
 * that table (`OptionsOf<typeof TABLE>`), so no option interface is written by hand. Core modules take
 * a narrow slice of it (`Pick<PreprocessOptions, …>`). Browser compatible.
 * @module
 */

/**
 * How a flag's value is read:
 * `string`, `int`, `float`; `bool` (argparse `store_true`: present = true); `truefalse` (UER-py's
 * `choices=["true", "false"]`, held as a boolean); `list` (`nargs='+'` words); `ints` (`nargs='+'`,
 * `type=int`).
 */
export type FlagType = "string" | "int" | "float" | "bool" | "truefalse" | "list" | "ints";

/** One flag as the user types it (`--<name>`), keyed by its UER-py name in its table. */
export interface FlagRow {
  readonly type: FlagType;
  readonly help: string;
  /** The value when the flag is not given (bool: false; `repeat`: []). */
  readonly default?: string | number | boolean | readonly string[] | readonly number[];
  /** Values UER-py accepts (argparse `choices`), plus the `older` spellings. */
  readonly choices?: readonly string[];
  /** The values uer-ts has built, when fewer than `choices` (other UER-py values: a not-built error). */
  readonly built?: readonly (string | number)[];
  /** Older UER-py spellings accepted as choices (e.g. `--embedding word_pos_seg`). */
  readonly older?: readonly string[];
  readonly required?: boolean;
  /** A repeatable string flag (`--text a --text b`). */
  readonly repeat?: boolean;
  /** Smallest (int/float, each element of ints) value allowed. */
  readonly min?: number;
  /** A bound the value must exceed (exclusive minimum). */
  readonly above?: number;
  /** A bound the value must stay under (exclusive maximum). */
  readonly below?: number;
  /** Largest value allowed. */
  readonly max?: number;
  /** A value error's hint line (default: see `<command> --help`). */
  readonly hint?: string;
  /**
   * Where UER-py declares the flag, `file:line` of its `add_argument` (e.g. `uer/opts.py:148`); absent
   * for uer-ts's own flags. core/flags/flags_test.ts checks the name, default and choices there.
   */
  readonly uer?: string;
  /** Why the default differs from UER-py's (required when it does). */
  readonly differs?: string;
  /** A UER-py flag uer-ts has not built: giving it is a usage error with this reason. */
  readonly notBuilt?: string;
}

/** A subcommand's flags, keyed by UER-py name. */
export type FlagTable = { readonly [name: string]: FlagRow };

/** `span_geo_prob` → `spanGeoProb`, as a type. */
export type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;

type Elem<R> = R extends { built: readonly (infer B)[] } ? B
  : R extends { choices: readonly (infer C)[] } ? C
  : string;

/** The value type of a row. */
export type ValueOf<R> = R extends { type: "int" | "float" } ? number
  : R extends { type: "bool" | "truefalse" } ? boolean
  : R extends { type: "ints" } ? number[]
  : R extends { repeat: true } ? string[]
  : R extends { type: "list" } ? Elem<R>[]
  : Elem<R>;

type Always<R> = R extends { required: true } ? true
  : R extends { default: unknown } ? true
  : R extends { type: "bool" } ? true
  : R extends { repeat: true } ? true
  : false;

type Live<T> = { [K in keyof T]: T[K] extends { notBuilt: string } ? never : K }[keyof T] & string;

type Simplify<T> = { [K in keyof T]: T[K] };

/**
 * The camelCase options of a table: one key per built flag, present when the flag is required or has
 * a default, optional otherwise.
 */
export type OptionsOf<T extends FlagTable> = Simplify<
  & { [K in Live<T> as Always<T[K]> extends true ? Camel<K> : never]: ValueOf<T[K]> }
  & { [K in Live<T> as Always<T[K]> extends true ? never : Camel<K>]?: ValueOf<T[K]> }
>;

/**
 * snake_case → camelCase, the one conversion at the CLI boundary.
 *
 * @example
 * ```ts
 * camel("span_geo_prob"); // "spanGeoProb"
 * ```
 */
export function camel<S extends string>(name: S): Camel<S> {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) as Camel<S>;
}

/** A row's value when its flag is not given (a fresh copy for lists). */
export function defaultOf(row: FlagRow): unknown {
  if (row.repeat) return [];
  if (row.default === undefined) return row.type === "bool" ? false : undefined;
  if (Array.isArray(row.default)) return [...row.default];
  if (row.type === "truefalse") return row.default === "true";
  return row.default;
}
