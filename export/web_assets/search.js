// Greedy and beam search over the step graphs, for one sentence, in float32: the
// JavaScript twin of seq2seq_attn/inference/search.py (batch 1, no sampling, no coverage
// penalty), so the page picks the tokens Python's host search picks.
//
//   step(prevTokens Int32Array(rows), states) ->
//       {logits Float32Array(rows * vocab), states, weights Float32Array(rows * sourceLength)}
//
// Rules mirrored from Python: log-softmax as (x - max) - log(sum(exp(x - max))) in float32;
// the arg-max keeps the first maximum; beam candidates are the top beamWidth of the flat
// (beam, token) scores, the lower flat index first among ties (`tf.math.top_k`); a finished
// beam may only continue with [END] at no cost and takes padding (0); the score is
// log P / ((5 + |Y|) / 6) ** lengthPenalty, |Y| counting [END]; at most maxLength tokens.

export const NEG_INF = Math.fround(-1e9);
const f32 = Math.fround;

// float32 log-softmax of row `row` of `logits` (rows x vocab) into a new Float32Array.
export function logSoftmax(logits, row, vocab) {
  const x = logits.subarray(row * vocab, (row + 1) * vocab);
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) if (x[v] > max) max = x[v];
  const out = new Float32Array(vocab);
  let sum = 0;
  for (let v = 0; v < vocab; v++) {
    out[v] = x[v] - max; // float32 storage rounds as NumPy's float32 subtraction
    sum += f32(Math.exp(out[v]));
  }
  const lse = f32(Math.log(f32(sum)));
  for (let v = 0; v < vocab; v++) out[v] = out[v] - lse;
  return out;
}

// GNMT lp(Y) = ((5 + |Y|) / 6) ** alpha in float32.
export function lengthPenaltyFactor(length, alpha) {
  return f32(Math.pow(f32(f32(5 + length) / 6), f32(alpha)));
}

// The floor(ratio * sourceLength + offset) rule of seq2seq_attn.interface.max_length_for.
export function maxLengthFor(sourceLength, ratio = 2, offset = 10) {
  return Number.isInteger(ratio)
    ? ratio * sourceLength + offset
    : Math.floor(ratio * sourceLength + offset);
}

function argmax(values) {
  let best = 0;
  for (let v = 1; v < values.length; v++) if (values[v] > values[best]) best = v;
  return best;
}

// Greedy decode of one sentence; `states` are the encoder's initial states (1 row).
export async function greedySearch(step, states, { startId, endId, maxLength, lengthPenalty = 0 }) {
  const tokens = [];
  const attention = [];
  const tokenLogProbs = [];
  let prev = startId;
  let logProb = f32(0);
  while (tokens.length < maxLength && prev !== endId) {
    const out = await step(Int32Array.of(prev), states);
    const lp = logSoftmax(out.logits, 0, out.logits.length);
    const token = argmax(lp);
    tokenLogProbs.push(lp[token]);
    logProb = f32(logProb + lp[token]);
    tokens.push(token);
    attention.push(Array.from(out.weights));
    states = out.states;
    prev = token;
  }
  const score = f32(logProb / lengthPenaltyFactor(tokens.length, lengthPenalty));
  const best = { tokens, score, attention, tokenLogProbs };
  return { ...best, nbest: [best] };
}

// The k largest of `values`, best first, lower index first among ties; [values, indices].
export function topK(values, k) {
  const index = [];
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (index.length === k && !(value > values[index[k - 1]])) continue;
    let at = index.length === k ? k - 1 : index.length;
    while (at > 0 && value > values[index[at - 1]]) at--;
    index.splice(at, 0, i);
    if (index.length > k) index.pop();
  }
  return [index.map((i) => values[i]), index];
}

// Scores of every (beam, token) continuation, as Python's `_expand_candidates` and
// `final_score`: finished beams may only repeat [END] at 0 cost, their attention is zeroed.
function expand(stepLp, weights, beams, vocab, sourceLength, endId, lengthPenalty) {
  const k = beams.length;
  const total = new Float32Array(k * vocab);
  const candScore = new Float32Array(k * vocab);
  for (let i = 0; i < k; i++) {
    const beam = beams[i];
    const length = beam.length + (beam.finished ? 0 : 1);
    const factor = lengthPenaltyFactor(length, lengthPenalty);
    if (beam.finished) weights.fill(0, i * sourceLength, (i + 1) * sourceLength);
    for (let v = 0; v < vocab; v++) {
      let lp = stepLp[i][v];
      if (beam.finished) lp = v === endId ? 0 : NEG_INF;
      total[i * vocab + v] = beam.logProb + lp;
      candScore[i * vocab + v] = total[i * vocab + v] / factor;
    }
  }
  return { total, candScore };
}

function gatherStates(states, parents, rows) {
  return states.map((state) => {
    const units = state.length / rows;
    const out = new Float32Array(state.length);
    parents.forEach((p, i) => out.set(state.subarray(p * units, (p + 1) * units), i * units));
    return out;
  });
}

// Beam search of one sentence; `step` sees beamWidth rows, `states` the encoder's initial
// states repeated per beam.
export async function beamSearch(
  step,
  states,
  { startId, endId, maxLength, beamWidth, nBest = 1, lengthPenalty = 0, sourceLength },
) {
  const k = beamWidth;
  let beams = Array.from({ length: k }, (_, i) => ({
    tokens: [], attention: [], tokenLogProbs: [], finished: false, length: 0,
    logProb: i === 0 ? 0 : NEG_INF, score: 0,
  }));
  let prev = new Int32Array(k).fill(startId);
  let steps = 0;
  while (steps < maxLength && !beams.every((b) => b.finished)) {
    const out = await step(prev, states);
    const vocab = out.logits.length / k;
    if (steps === 0 && k > vocab) {
      throw new RangeError(`beam width ${k} is larger than the vocabulary (${vocab})`);
    }
    const stepLp = beams.map((_, i) => logSoftmax(out.logits, i, vocab));
    const weights = Float32Array.from(out.weights);
    const { total, candScore } = expand(
      stepLp, weights, beams, vocab, sourceLength, endId, lengthPenalty,
    );
    const [scores, index] = topK(candScore, k);
    const parents = index.map((i) => Math.floor(i / vocab));
    beams = index.map((flat, j) => {
      const parent = beams[parents[j]];
      const token = parent.finished ? 0 : flat % vocab;
      const chosen = parent.finished ? 0 : stepLp[parents[j]][flat % vocab];
      const row = weights.subarray(parents[j] * sourceLength, (parents[j] + 1) * sourceLength);
      return {
        tokens: [...parent.tokens, token],
        attention: [...parent.attention, Array.from(row)],
        tokenLogProbs: [...parent.tokenLogProbs, chosen],
        finished: parent.finished || token === endId,
        length: parent.length + (parent.finished ? 0 : 1),
        logProb: total[flat],
        score: scores[j],
      };
    });
    states = gatherStates(out.states, parents, k);
    prev = Int32Array.from(beams, (b) => b.tokens[b.tokens.length - 1]);
    steps++;
  }
  const nbest = beams.slice(0, nBest).map(({ tokens, score, attention, tokenLogProbs }) => ({
    tokens, score, attention, tokenLogProbs,
  }));
  return { ...nbest[0], nbest };
}
