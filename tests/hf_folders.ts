/**
 * HF folders as transformers' `save_pretrained` writes them for the head-less ALBERT classes, made from
 * the reference `AlbertForPreTraining` folder (`albert-tiny/hf`): `AlbertForMaskedLM` (no pooler, no SOP
 * classifier) and `AlbertModel` (no `albert.` prefix, the pooler kept, no heads), with the reference
 * `config.json` (its `architectures` set) and tokenizer files.
 * @module
 */
import { readSafetensors, writeSafetensors } from "../convert/safetensors.ts";
import { refPath } from "./reference.ts";

/** The classes `headlessFolder` writes. */
export type HeadlessClass = "AlbertForMaskedLM" | "AlbertModel";

/**
 * Writes `dir` as `save_pretrained` of `cls` would (`model.safetensors`, `config.json`, `files` copied from
 * the reference folder) and returns it.
 *
 * @example
 * ```ts
 * const mlm = await headlessFolder(`${tmp}/mlm`, "AlbertForMaskedLM", ["tokenizer.json"]);
 * ```
 */
export async function headlessFolder(dir: string, cls: HeadlessClass, files = ["vocab.txt"]): Promise<string> {
  const hf = refPath("albert-tiny/hf");
  const all = readSafetensors(await Deno.readFile(`${hf}/model.safetensors`), "model.safetensors").tensors;
  const kept = cls === "AlbertModel"
    ? [...all].filter(([k]) => k.startsWith("albert.")).map(([k, v]) => [k.slice("albert.".length), v] as const)
    : [...all].filter(([k]) => !k.startsWith("albert.pooler.") && !k.startsWith("sop_classifier."));
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/model.safetensors`, writeSafetensors(new Map(kept), { format: "pt" }));
  const config = JSON.parse(await Deno.readTextFile(`${hf}/config.json`));
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...config, architectures: [cls] }, null, 2));
  for (const f of files) await Deno.copyFile(`${hf}/${f}`, `${dir}/${f}`);
  return dir;
}
