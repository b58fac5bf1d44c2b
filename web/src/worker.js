// The page's decoding thread: runs translate.js off the main thread, so the page stays
// responsive. Messages in: {id, op: "load" | "translate" | "tokenize", args}; out:
// {id, ok, result} or {id, ok: false, error: {code, message}}, and {progress} while loading.
import { load, tokenize, translate } from "./translate.js";

const ops = {
  load: (folder, options) =>
    load(folder, { ...options, onProgress: (progress) => self.postMessage({ progress }) }),
  translate: (text, options) => translate(text, options),
  tokenize: (texts) => texts.map((text) => tokenize(text)),
  translateAll: async (texts, options) => {
    const out = [];
    for (const text of texts) out.push(await translate(text, options));
    return out;
  },
};

self.onmessage = async ({ data }) => {
  const { id, op, args } = data;
  try {
    self.postMessage({ id, ok: true, result: await ops[op](...args) });
  } catch (error) {
    self.postMessage({ id, ok: false, error: { code: error.code || "error", message: error.message } });
  }
};
