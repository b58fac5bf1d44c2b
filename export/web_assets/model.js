// The exported step graphs in onnxruntime-web's WebAssembly backend:
//   encoder.onnx       source_ids -> memory, projected_keys, mask, state_0..
//   decoder_step.onnx  prev_tokens, state_i, memory, projected_keys, mask
//                      -> logits, new_state_i, attention
// as seq2seq_attn/inference/runtime.py runs them in Python. Input and output names come
// from the sessions themselves; a graph input this page does not know is an error.
import * as ort from "./ort.wasm.min.mjs";

const STATE = /^state_(\d+)$/;

// One thread: no SharedArrayBuffer (which needs COOP/COEP headers a static host may not
// send), and two threads were slower for these small graphs (docs/browser.md).
ort.env.wasm.numThreads = 1;

export const backend = "onnxruntime-web (WebAssembly, 1 thread)";
// The runtime's WebAssembly binary, fetched by the caller (so that its download shows in the
// page's progress) instead of by onnxruntime-web itself.
export const RUNTIME_WASM = "ort-wasm-simd-threaded.wasm";

export function useRuntimeBinary(bytes) {
  if (!ort.env.wasm.wasmBinary) ort.env.wasm.wasmBinary = bytes;
}

function repeatRows(data, rows) {
  const out = new Float32Array(data.length * rows);
  for (let r = 0; r < rows; r++) out.set(data, r * data.length);
  return out;
}

export class StepModel {
  // `graphs`: {encoder: Uint8Array, decoderStep: Uint8Array} of the .onnx files.
  static async create(graphs) {
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const model = new StepModel();
    model.encoder = await ort.InferenceSession.create(graphs.encoder, options);
    model.decoder = await ort.InferenceSession.create(graphs.decoderStep, options);
    model.stateNames = model.decoder.inputNames
      .filter((name) => STATE.test(name))
      .sort((a, b) => Number(a.match(STATE)[1]) - Number(b.match(STATE)[1]));
    const known = new Set(["prev_tokens", "memory", "projected_keys", "mask", ...model.stateNames]);
    const unknown = model.decoder.inputNames.filter((name) => !known.has(name));
    if (unknown.length) {
      throw new Error(`decoder_step.onnx has inputs this page does not know: ${unknown.join(", ")}`);
    }
    return model;
  }

  // Runs the encoder on one sentence's ids; returns the arrays the step needs.
  async encode(ids) {
    const sourceIds = new ort.Tensor("int32", Int32Array.from(ids), [1, ids.length]);
    const out = await this.encoder.run({ source_ids: sourceIds });
    return {
      sourceLength: ids.length,
      memory: out.memory,
      keys: out.projected_keys,
      mask: out.mask,
      states: this.stateNames.map((name) => out[name].data),
    };
  }

  // A step function over `rows` copies of the encoded sentence (1 for greedy, the beam
  // width for beam search), as `search.js` calls it.
  stepper(encoded, rows) {
    const tile = (tensor) =>
      new ort.Tensor("float32", repeatRows(tensor.data, rows), [rows, ...tensor.dims.slice(1)]);
    const fixed = {
      memory: tile(encoded.memory),
      projected_keys: tile(encoded.keys),
      mask: tile(encoded.mask),
    };
    return async (prevTokens, states) => {
      const feeds = { ...fixed, prev_tokens: new ort.Tensor("int32", prevTokens, [rows]) };
      this.stateNames.forEach((name, i) => {
        feeds[name] = new ort.Tensor("float32", states[i], [rows, states[i].length / rows]);
      });
      const out = await this.decoder.run(feeds);
      return {
        logits: out.logits.data,
        weights: out.attention.data,
        states: this.stateNames.map((_, i) => out[`new_state_${i}`].data),
      };
    };
  }
}
