/**
 * `finetune`'s flags: UER-py's precedence for `--dropout` (default 0.1 < config < flag; the ALBERT
 * configs say 0.0), the config keys an ALBERT config holds, and the poolings and schedulers built.
 */
import assert from "node:assert/strict";
import { parseOptions } from "../../cli/options.ts";

const REQ = ["--train_path", "t.tsv", "--dev_path", "d.tsv", "--vocab_path", "v.txt"];

Deno.test("finetune --dropout: UER-py's default 0.1 < the config file < the flag", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const albert = new URL("../../configs/albert/tiny_config.json", import.meta.url).pathname;
    const noDropout = `${dir}/c.json`;
    const cfg = JSON.parse(await Deno.readTextFile(albert));
    delete cfg.dropout;
    await Deno.writeTextFile(noDropout, JSON.stringify(cfg));
    assert.equal((await parseOptions("finetune", [...REQ, "--config_path", noDropout])).dropout, 0.1);
    assert.equal((await parseOptions("finetune", [...REQ, "--config_path", albert])).dropout, 0);
    assert.equal((await parseOptions("finetune", REQ)).dropout, 0); // built-in ALBERT base config
    const flag = await parseOptions("finetune", [...REQ, "--config_path", albert, "--dropout", "0.2"]);
    assert.equal(flag.dropout, 0.2);
    assert.equal(flag.model.hidden_size, cfg.hidden_size);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finetune builds UER-py's four poolings and its schedulers but tri_stage", async () => {
  for (const p of ["first", "last", "mean", "max"]) {
    assert.equal((await parseOptions("finetune", [...REQ, "--pooling", p])).pooling, p);
  }
  for (const s of ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "inverse_sqrt"]) {
    assert.equal((await parseOptions("finetune", [...REQ, "--scheduler", s])).scheduler, s);
  }
  await assert.rejects(() => parseOptions("finetune", [...REQ, "--scheduler", "tri_stage"]), /tri_stage/);
  await assert.rejects(() => parseOptions("finetune", [...REQ, "--lr_decay", "0.3"]), /--lr_decay is a UER-py flag/);
});
