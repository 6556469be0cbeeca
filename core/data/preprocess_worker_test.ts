import assert from "node:assert/strict";
import { pythonJiebaWords } from "./word_segmenter.ts";

Deno.test("pythonJiebaWords() re-splits jieba-rs's unescaped-dot matches as Python jieba 0.42 does", () => {
  const inDict = (w: string) => w === "ipad";
  // jieba-rs output -> Python jieba's cut of the same sentence.
  assert.deepEqual(pythonJiebaWords(["高", "4-5", "db", "很"], inDict), ["高", "4", "-", "5db", "很"]);
  assert.deepEqual(pythonJiebaWords(["约", "35%45%", "的"], inDict), ["约", "35%", "45%", "的"]);
  assert.deepEqual(pythonJiebaWords(["3-4", "ipad"], inDict), ["3", "-", "4", "ipad"]);
  // Words Python cuts the same way are untouched.
  const same = ["比", "tp", "-", "linkw340g", "3.14", "95%", "2017", "年"];
  assert.deepEqual(pythonJiebaWords(same, inDict), same);
});
