// The translation page: a form, a Web Worker that loads the model and decodes, and the
// attention table drawn as the server's page draws it (serving/static/app.js).
const $ = (id) => document.getElementById(id);
const form = $("translate-form");
const source = $("source");
const beam = $("beam");
const graphs = $("graphs");
const statusLine = $("status");
const button = form.querySelector("button");

let worker = null;
let loading = false; // progress messages count only while loading (other fetches may go on)
let nextId = 0;
const pending = new Map();

function call(op, ...args) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args });
  });
}

function onMessage({ data }) {
  if (data.progress) {
    if (!loading) return;
    const { loaded, total } = data.progress;
    const percent = total ? Math.min(100, Math.round((100 * loaded) / total)) : 0;
    $("progress").value = percent;
    statusLine.textContent = `Loading the model… ${percent}% of ${(total / 1e6).toFixed(1)} MB`;
    return;
  }
  const { resolve, reject } = pending.get(data.id);
  pending.delete(data.id);
  if (data.ok) resolve(data.result);
  else reject(Object.assign(new Error(data.error.message), { code: data.error.code }));
}

// White (0) to dark blue (1); the weight itself is in the cell's title.
function cellColor(weight) {
  const w = Math.max(0, Math.min(1, weight));
  return `rgb(${Math.round(255 - 215 * w)}, ${Math.round(255 - 175 * w)}, ${Math.round(255 - 75 * w)})`;
}

function drawHeatmap(table, sourceTokens, targetTokens, attention) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement("th"));
  for (const token of sourceTokens) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = token;
    head.appendChild(th);
  }
  const body = table.createTBody();
  targetTokens.forEach((token, i) => {
    const row = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = token;
    row.appendChild(th);
    attention[i].forEach((weight, j) => {
      const cell = row.insertCell();
      cell.style.backgroundColor = cellColor(weight);
      cell.title = `${token} → ${sourceTokens[j]}: ${weight.toFixed(3)}`;
      cell.dataset.weight = String(weight);
    });
  });
}

async function loadModel() {
  button.disabled = true;
  $("result").hidden = true;
  $("progress").hidden = false;
  if (worker) worker.terminate();
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = onMessage;
  worker.onerror = (event) => {
    statusLine.textContent = `The translation worker failed: ${event.message || "see the console"}`;
  };
  const started = performance.now();
  loading = true;
  try {
    const info = await call("load", new URL("./", location.href).href, {
      quantized: graphs.value === "int8",
    });
    beam.max = String(info.limits.max_beam_width);
    beam.value = String(info.limits.default_beam_width);
    source.maxLength = info.limits.max_text_chars;
    $("backend").textContent = info.backend;
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    statusLine.textContent = `Model ready (${graphs.value} graphs, loaded in ${seconds} s).`;
    button.disabled = false;
    document.body.dataset.ready = "true";
  } catch (error) {
    statusLine.textContent = `The model cannot load: ${error.message}`;
    document.body.dataset.ready = "error";
  } finally {
    loading = false;
    $("progress").hidden = true;
  }
}

async function onSubmit(event) {
  event.preventDefault();
  const text = source.value;
  if (!text.trim()) {
    statusLine.textContent = "Enter a text to translate: the text is empty.";
    return;
  }
  statusLine.textContent = "Translating…";
  button.disabled = true;
  try {
    const result = await call("translate", text, { beamWidth: Number(beam.value) });
    $("translation").textContent = result.text;
    $("score").textContent = result.score.toFixed(4);
    $("time").textContent = `${result.ms.toFixed(0)} ms`;
    drawHeatmap($("heatmap"), result.sourceTokens, result.targetTokens, result.attention);
    $("result").hidden = false;
    statusLine.textContent = "Done.";
  } catch (error) {
    statusLine.textContent = `Cannot translate: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

// `?graphs=int8` picks the int8 graphs from the start.
if (new URLSearchParams(location.search).get("graphs") === "int8") graphs.value = "int8";
form.addEventListener("submit", onSubmit);
graphs.addEventListener("change", loadModel);
// For scripts and tests: the page's own worker, one call for many texts.
window.seq2seqAttn = {
  translate: (text, options) => call("translate", text, options),
  translateAll: (texts, options) => call("translateAll", texts, options),
  tokenize: (texts) => call("tokenize", texts),
  reload: loadModel,
};
if (document.body.dataset.blocked !== "true") loadModel();
