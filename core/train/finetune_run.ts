/**
 * One `finetune` run, as UER-py's `finetune/run_classifier.py` `main()`: reads the vocab and the
 * train/dev/test TSVs (errors name file and line), counts the labels, builds the classifier from
 * `--pretrained_model_path` (UER `.bin`, HF folder or zarr checkpoint; like UER-py's
 * `load_state_dict(strict=False)`, classifier layers present in the file are used and absent ones
 * initialised as torch's `nn.Linear` leaves them, and it says which; without a model every weight is
 * drawn from N(0, 0.02)), runs core/train/finetune.ts and writes:
 * - `--output_model_path`: the best epoch's model as UER-py's `save_model` writes it (a torch `.bin`
 *   state dict with UER names, `output_layer_1`/`output_layer_2` included), atomically;
 * - `<output_model_path>.metrics.jsonl`: a row per step `{step, epoch, loss, lr}` and per evaluation
 *   `{split, epoch, acc, correct, n, confusion, labels: [{precision, recall, f1}]}`;
 * - `<output_model_path>.loss.svg`: the loss curve, redrawn as the run goes.
 * Outputs that exist are refused unless `--overwrite`. `RunOutput.signal` (the CLI's Ctrl-C or SIGTERM)
 * stops it after the current step; the best epoch so far stays saved. Not browser compatible (Deno
 * file system).
 * @module
 */
import type { FinetuneOptions } from "../flags/mod.ts";
import { modelConfigOf } from "../flags/model_config.ts";
import type { AlbertConfig } from "../config.ts";
import type { Tensor } from "../tensor.ts";
import { exists, writeFileAtomic } from "../io/atomic.ts";
import { readVocabFile } from "../io/vocab_file.ts";
import { readFlagFile } from "../io/flag_file.ts";
import { metricsPaths } from "./metrics_log.ts";
import { BertTokenizer } from "../tokenizer/mod.ts";
import {
  checkLabels,
  type ClassifierFile,
  countLabels,
  encodeRows,
  parseClassifierTsv,
} from "../data/classifier_data.ts";
import { detectFormat, loadModel } from "../../convert/mod.ts";
import { uerModuleMetadata, uerParamNames } from "../../convert/names.ts";
import { writeTorchBin } from "../../convert/torch_bin.ts";
import { archiveStem } from "../../convert/convert.ts";
import { classifierHeadShapes } from "../model/classifier.ts";
import { classifierParamShapes, classifierTask } from "./classifier_task.ts";
import { type EvalResult, finetune, type FinetuneResult, finetuneStatSlots, type FinetuneStep } from "./finetune.ts";
import { lossCurveSvg, pyFixed } from "./metrics.ts";
import { initLinearParams, initParams, Trainer } from "./trainer.ts";

/** Where a run's lines go (the CLI prints them). */
export interface RunOutput {
  /** Messages about the run (stderr; silent with --quiet). */
  info(line: string): void;
  /** Report lines (stdout: UER-py's, or JSON with --json). */
  report(line: string): void;
  /** A progress line to redraw in place (TTY only), or null to clear it. */
  progress?(line: string | null): void;
  /** Aborted: stop after the current step (the CLI's SIGINT/SIGTERM, cli/interrupt.ts). */
  signal?: AbortSignal;
}

/** The metrics files of a fine-tuning run: those of a pretraining run (metrics_log.ts). */
export const finetuneMetricsPaths = metricsPaths;

async function readTsv(path: string, flag: string, requireLabel = true): Promise<ClassifierFile> {
  return parseClassifierTsv(await readFlagFile(flag, path), path, { requireLabel });
}

/** The classifier's starting weights and what the run says about them. */
async function startWeights(
  opts: FinetuneOptions,
  config: AlbertConfig,
  labelsNum: number,
  info: (l: string) => void,
): Promise<Map<string, Tensor>> {
  const specs = classifierParamShapes(config, labelsNum);
  const from = opts.pretrainedModelPath;
  if (from === undefined) {
    info(`no --pretrained_model_path: every weight drawn from N(0, 0.02) (UER-py's initialisation), seed ${opts.seed}`);
    return initParams(specs, opts.seed);
  }
  const format = await detectFormat(from);
  const m = await loadModel(from, { configPath: opts.configPath });
  const head = new Set(classifierHeadShapes(config, labelsNum).map((s) => s.name));
  const params = new Map<string, Tensor>();
  for (const { name, shape } of specs) {
    const t = m.params.get(name);
    if (!t) {
      if (head.has(name)) continue;
      throw new TypeError(
        `Cannot start from "${from}": parameter "${name}" is missing\n  hint: check --config_path (the model's config)`,
      );
    }
    if (t.shape.join() !== shape.join()) {
      const rows = t.shape[0] !== shape[0]; // vocabulary, positions or labels; another size is the config's
      const hint = rows && name.startsWith("output_layer_2")
        ? `the model was fine-tuned for ${t.shape[0]} labels, the training file has ${labelsNum}`
        : rows && name.startsWith("embedding.word")
        ? "check --vocab_path"
        : rows && name.startsWith("embedding.pos")
        ? "check --config_path (max_seq_length)"
        : "check --config_path";
      throw new TypeError(
        `Cannot start from "${from}": "${name}" has shape [${t.shape}], the run needs [${shape}]\n  hint: ${hint}`,
      );
    }
    params.set(name, t);
  }
  const fresh = [...head].filter((n) => !params.has(n));
  if (fresh.length > 0) {
    const init = initLinearParams(classifierHeadShapes(config, labelsNum), opts.seed);
    for (const n of fresh) params.set(n, init.get(n)!);
  }
  const unused = [...m.params.keys()].filter((n) => !specs.some((s) => s.name === n));
  const groups = [...new Set(unused.map((n) => n.split(".").slice(0, 2).join(".")))];
  info(
    `starting from "${from}" (${format}${m.semantics === "hf" ? ", trained with UER-py's LayerNorm" : ""}): ` +
      (fresh.length === 0
        ? "its classifier layers output_layer_1/2 are used"
        : `output_layer_1/2 are not in it and start as torch's nn.Linear init (seed ${opts.seed})`) +
      (groups.length ? `; not used: ${groups.map((g) => `${g}.*`).join(", ")}` : ""),
  );
  // Backbone first, classifier last: the order of the task's parameter list.
  return new Map(specs.map((s) => [s.name, params.get(s.name)!]));
}

/** UER-py's `evaluate` printout: confusion, per-label precision/recall/F1, accuracy. */
export function evalLines(r: EvalResult): string[] {
  const w = Math.max(...r.confusion.flat().map((x) => String(x).length));
  const rows = r.confusion.map((row) => `[${row.map((x) => String(x).padStart(w)).join(", ")}]`);
  return [
    "Confusion matrix:",
    `tensor([${rows.join(",\n        ")}])`,
    "Report precision, recall, and f1:",
    ...r.labels.map((l, i) => `Label ${i}: ${pyFixed(l.precision, 3)}, ${pyFixed(l.recall, 3)}, ${pyFixed(l.f1, 3)}`),
    `Acc. (Correct/Total): ${pyFixed(r.acc, 4)} (${r.correct}/${r.n}) `,
  ];
}

/** What the run did. */
export interface FinetuneSummary extends FinetuneResult {
  labelsNum: number;
  outputModelPath: string;
}

/**
 * Runs `finetune` with `opts` (the parsed flags).
 *
 * @example
 * ```ts
 * await runFinetune(await parseOptions("finetune", ["--train_path", "train.tsv", ...]), {
 *   info: console.error, report: console.log });
 * ```
 */
export async function runFinetune(opts: FinetuneOptions, out: RunOutput): Promise<FinetuneSummary> {
  const info = (l: string) => void (!opts.quiet && out.info(l));
  const paths = finetuneMetricsPaths(opts.outputModelPath);
  if (!opts.overwrite) {
    for (const p of [opts.outputModelPath, paths.jsonl]) {
      if (await exists(p)) {
        throw new TypeError(
          `Cannot write --output_model_path "${opts.outputModelPath}": "${p}" already exists` +
            `\n  hint: pass --overwrite to replace it, or another --output_model_path`,
        );
      }
    }
  }
  const vocab = await readVocabFile(opts.vocabPath!, "uer");
  const tok = new BertTokenizer(vocab, { mode: "uer", doLowerCase: opts.doLowerCase });
  const config = modelConfigOf(opts, vocab.size);
  if (opts.seqLength > config.max_seq_length) {
    throw new TypeError(
      `Cannot fine-tune with --seq_length ${opts.seqLength}: the model has ${config.max_seq_length} positions` +
        `\n  hint: pass --seq_length ${config.max_seq_length} or less`,
    );
  }
  const trainFile = await readTsv(opts.trainPath, "train_path");
  const labelsNum = countLabels(trainFile);
  const devFile = await readTsv(opts.devPath, "dev_path");
  checkLabels(devFile, labelsNum, opts.trainPath);
  const testFile = opts.testPath === undefined ? undefined : await readTsv(opts.testPath, "test_path");
  if (testFile) checkLabels(testFile, labelsNum, opts.trainPath);
  const enc = (f: ClassifierFile) => encodeRows(f.rows, tok, opts.seqLength);
  const train = enc(trainFile), dev = enc(devFile), test = testFile && enc(testFile);

  const params = await startWeights(opts, config, labelsNum, info);
  const trainer = await Trainer.create({
    task: classifierTask(config, { labelsNum, pooling: opts.pooling }),
    params,
    device: opts.device,
    dropout: opts.dropout,
    seed: opts.seed,
    statSlots: finetuneStatSlots(opts.reportSteps, train.count, opts.batchSize),
    log: opts.quiet ? () => {} : undefined,
  });
  info(`Batch size: ${opts.batchSize}`);
  info(`The number of training instances: ${train.count}`);
  info(
    `fine-tuning ${labelsNum} labels${trainFile.pairs ? " (sentence pairs)" : ""} on ${trainer.deviceName}: ` +
      `${opts.epochsNum} epochs, lr ${opts.learningRate} (${opts.scheduler}, warmup ${opts.warmup}), ` +
      `pooling ${opts.pooling}, dropout ${opts.dropout}`,
  );

  if (opts.overwrite) {
    // The earlier run's model goes now: a run that never beats dev accuracy 0 saves nothing, and must not
    // leave the old model looking like its own.
    for (const p of [opts.outputModelPath, paths.svg]) await Deno.remove(p).catch(() => {});
  }
  await writeFileAtomic(paths.jsonl, "");
  const records: { step: number; loss: number }[] = [];
  const title = `finetune ${opts.outputModelPath}`;
  const append = async (rows: unknown[]) => {
    const f = await Deno.open(paths.jsonl, { append: true, create: true });
    try {
      await f.write(new TextEncoder().encode(rows.map((r) => JSON.stringify(r) + "\n").join("")));
    } finally {
      f.close();
    }
  };
  const logFile = opts.logPath ? await Deno.open(opts.logPath, { create: true, append: true }) : undefined;
  const report = async (line: string) => {
    out.progress?.(null);
    if (!opts.quiet) out.report(line);
    if (logFile) await logFile.write(new TextEncoder().encode(line + "\n"));
  };
  const t0 = performance.now();
  let result: FinetuneResult;
  try {
    result = await finetune({
      trainer,
      train,
      dev,
      test,
      labelsNum,
      batchSize: opts.batchSize,
      epochsNum: opts.epochsNum,
      learningRate: opts.learningRate,
      warmup: opts.warmup,
      scheduler: opts.scheduler,
      seed: opts.seed,
      reportSteps: opts.reportSteps,
      signal: out.signal,
      onSteps: async (steps: FinetuneStep[]) => {
        await append(steps);
        records.push(...steps.map((s) => ({ step: s.step, loss: s.loss })));
        await writeFileAtomic(paths.svg, lossCurveSvg(records, { title, series: ["loss"] }));
      },
      onReport: (r) =>
        opts.json
          ? report(JSON.stringify({ epoch: r.epoch, steps: r.steps, avg_loss: r.avgLoss }))
          : report(`Epoch id: ${r.epoch}, Training steps: ${r.steps}, Avg loss: ${pyFixed(r.avgLoss, 3)}`),
      onProgress: out.progress && !opts.quiet && !opts.json
        ? (p) => {
          const s = (performance.now() - t0) / 1000;
          const eta = ((p.totalSteps - p.step) * s) / p.step;
          out.progress!(
            `  epoch ${p.epoch}/${opts.epochsNum}  step ${p.step}/${p.totalSteps}  ${(p.step / s).toFixed(2)} steps/s` +
              `  ETA ${Math.round(eta)}s  lr ${p.lr.toExponential(2)}`,
          );
        }
        : undefined,
      onEval: async (split, epoch, r) => {
        const row = { split, epoch, ...r };
        await append([row]);
        if (opts.json) await report(JSON.stringify(row));
        else {
          if (split === "test") await report("Test set evaluation.");
          for (const l of evalLines(r)) await report(l);
        }
      },
      onBest: async (epoch, best) => {
        const names = uerParamNames(config, ["classifier"]);
        const bytes = writeTorchBin(new Map(names.map((n) => [n, best.get(n)!])), {
          archiveName: archiveStem(opts.outputModelPath),
          metadata: uerModuleMetadata(config, ["classifier"]),
        });
        await writeFileAtomic(opts.outputModelPath, bytes);
        out.progress?.(null);
        info(`saved epoch ${epoch} to "${opts.outputModelPath}"`);
      },
    });
  } finally {
    out.progress?.(null);
    logFile?.close();
    await trainer.dispose();
  }
  if (result.bestEpoch === null && !result.stopped) {
    info(`no epoch reached a dev accuracy above 0: nothing saved (UER-py saves only a better epoch)`);
  }
  if (result.stopped) {
    info(
      `stopped at step ${result.steps}` +
        (result.bestEpoch === null
          ? "; no epoch finished"
          : `; epoch ${result.bestEpoch} is saved in "${opts.outputModelPath}"`),
    );
  }
  return { ...result, labelsNum, outputModelPath: opts.outputModelPath };
}
