// Translate in the browser: `load` an exported folder (written by `seq2seq-attn export
// --web`), then `translate` texts with greedy or beam search. Works in a page and in a
// Web Worker (it uses only fetch, WebAssembly and module imports).
//
//   import { load, translate } from "./translate.js";
//   await load("./", { quantized: false });
//   const { text, tokens, score, attention } = await translate("March 3, 2001", { beamWidth: 4 });
import { RUNTIME_WASM, StepModel, backend, useRuntimeBinary } from "./model.js";
import { beamSearch, greedySearch, maxLengthFor } from "./search.js";
import { Tokenizer } from "./tokenizer.js";

export { backend };

// An error the page shows as it is; `code` names the kind, as the server's error codes do
// (empty_text, text_too_long, bad_beam_width, missing_file, bad_file, not_loaded).
export class TranslateError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "TranslateError";
    this.code = code;
  }
}

let loaded = null;

async function fetchBytes(url, name, onBytes) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new TranslateError("missing_file", `cannot fetch ${name}: ${error.message}`);
  }
  if (!response.ok) {
    throw new TranslateError(
      "missing_file",
      `${name} is missing from the model folder (HTTP ${response.status}); export it again`,
    );
  }
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    onBytes(value.length);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

// Checks `bytes` against the SHA-256 manifest.json records for `name`, where the browser
// offers hashing (secure contexts: https, localhost); as the Python runtimes check a file.
async function verify(bytes, name, manifest) {
  if (!globalThis.crypto?.subtle) return;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (hex !== manifest.files[name]) {
    throw new TranslateError(
      "bad_file",
      `${name} does not match the SHA-256 in manifest.json (changed or corrupted since the export); export it again`,
    );
  }
}

// Loads the manifest, the two tokenizers, the step graphs (float32, or int8 with `quantized`)
// and the runtime's WebAssembly of the folder at `folderUrl`. `onProgress({loaded, total})`
// gets bytes.
export async function load(folderUrl, { quantized = false, onProgress = () => {} } = {}) {
  const base = new URL(folderUrl.endsWith("/") ? folderUrl : `${folderUrl}/`, self.location.href);
  const manifestBytes = await fetchBytes(new URL("manifest.json", base), "manifest.json", () => {});
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  const graphs = manifest.graphs[quantized ? "int8" : "float32"];
  const names = [manifest.tokenizer.source, manifest.tokenizer.target, graphs.encoder, graphs.decoder_step];
  const unique = [...new Set(names), RUNTIME_WASM];
  const total = unique.reduce((sum, name) => sum + (manifest.sizes[name] || 0), 0);
  let done = 0;
  const onBytes = (n) => onProgress({ loaded: (done += n), total });
  const files = await Promise.all(unique.map((name) => fetchBytes(new URL(name, base), name, onBytes)));
  await Promise.all(unique.map((name, i) => verify(files[i], name, manifest)));
  const byName = Object.fromEntries(unique.map((name, i) => [name, files[i]]));
  useRuntimeBinary(byName[RUNTIME_WASM]);
  const special = manifest.special_ids;
  const source = await Tokenizer.fromBytes(byName[names[0]], special);
  const target = names[1] === names[0] ? source : await Tokenizer.fromBytes(byName[names[1]], special);
  const model = await StepModel.create({ encoder: byName[names[2]], decoderStep: byName[names[3]] });
  loaded = { manifest, source, target, model, quantized };
  return { limits: manifest.limits, quantized, backend };
}

function current() {
  if (!loaded) throw new TranslateError("not_loaded", "no model loaded: call load() first");
  return loaded;
}

// [START] ids [END] of `text`, by the source tokenizer.
export function tokenize(text) {
  return current().source.encode(text);
}

// The source ids of `text`, or a TranslateError with the server's limits and messages.
function checkedIds(text, limits, source) {
  if (!text.trim()) throw new TranslateError("empty_text", "the text is empty");
  if (text.length > limits.max_text_chars) {
    throw new TranslateError(
      "text_too_long",
      `the text has ${text.length} characters; the limit is ${limits.max_text_chars}`,
    );
  }
  const ids = source.encode(text);
  if (ids.length > limits.max_source_tokens) {
    throw new TranslateError(
      "text_too_long",
      `the text has ${ids.length} tokens with [START] and [END]; the limit is ${limits.max_source_tokens}`,
    );
  }
  return ids;
}

function untilEnd(tokens, endId) {
  const end = tokens.indexOf(endId);
  return end < 0 ? tokens : tokens.slice(0, end + 1);
}

// Translates one text. Returns {text, tokens, score, attention, sourceTokens, targetTokens,
// nbest: [{text, tokens, score}], ms}; tokens end with [END] unless the length rule cut them.
export async function translate(text, { beamWidth = 1, nBest = 1, lengthPenalty = 0 } = {}) {
  const { manifest, source, target, model } = current();
  const limits = manifest.limits;
  if (!Number.isInteger(beamWidth) || beamWidth < 1 || beamWidth > limits.max_beam_width) {
    throw new TranslateError(
      "bad_beam_width",
      `beam width ${beamWidth}: must be from 1 to ${limits.max_beam_width}`,
    );
  }
  if (!Number.isInteger(nBest) || nBest < 1 || nBest > beamWidth) {
    throw new TranslateError("bad_option", `n-best ${nBest}: must be from 1 to the beam width`);
  }
  const started = performance.now();
  const ids = checkedIds(text, limits, source);
  const special = manifest.special_ids;
  const encoded = await model.encode(ids);
  const options = {
    startId: special.start,
    endId: special.end,
    maxLength: Math.min(maxLengthFor(ids.length), limits.max_output_length),
    beamWidth,
    nBest,
    lengthPenalty,
    sourceLength: ids.length,
  };
  const result =
    beamWidth === 1
      ? await greedySearch(model.stepper(encoded, 1), encoded.states, options)
      : await beamSearch(
          model.stepper(encoded, beamWidth),
          encoded.states.map((s) => repeat(s, beamWidth)),
          options,
        );
  const nbest = result.nbest.map((one) => {
    const tokens = untilEnd(one.tokens, special.end);
    return { text: target.decode(tokens), tokens, score: one.score, attention: one.attention.slice(0, tokens.length) };
  });
  return {
    ...nbest[0],
    sourceIds: ids,
    sourceTokens: source.idToToken(ids),
    targetTokens: target.idToToken(nbest[0].tokens),
    nbest: nbest.map(({ text, tokens, score }) => ({ text, tokens, score })),
    ms: performance.now() - started,
  };
}

function repeat(data, rows) {
  const out = new Float32Array(data.length * rows);
  for (let r = 0; r < rows; r++) out.set(data, r * data.length);
  return out;
}
