// The translation page: POST /translate with return_attention, then draw the attention
// weights as an HTML table (rows: output tokens, columns: source tokens). No libraries.
"use strict";

const form = document.getElementById("translate-form");
const source = document.getElementById("source");
const beam = document.getElementById("beam");
const statusLine = document.getElementById("status");
const result = document.getElementById("result");

async function loadConfig() {
  try {
    const response = await fetch("/config.json");
    const config = await response.json();
    document.getElementById("model-name").textContent = config.model;
    beam.max = String(config.max_beam_width);
    beam.value = String(config.default_beam_width);
    source.maxLength = config.max_text_chars;
  } catch (error) {
    statusLine.textContent = "Could not read the server configuration: " + error;
  }
}

// White (0) to dark blue (1); the weight itself is in the cell's title.
function cellColor(weight) {
  const w = Math.max(0, Math.min(1, weight));
  const r = Math.round(255 - 215 * w);
  const g = Math.round(255 - 175 * w);
  const b = Math.round(255 - 75 * w);
  return `rgb(${r}, ${g}, ${b})`;
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

async function translate(event) {
  event.preventDefault();
  const text = source.value;
  statusLine.textContent = "Translating…";
  form.querySelector("button").disabled = true;
  try {
    const response = await fetch("/translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        text: text,
        beam_width: Number(beam.value),
        return_attention: true,
      }),
    });
    const data = await response.json();
    if (!response.ok) {
      statusLine.textContent = `Error ${response.status}: ${data.error}`;
      result.hidden = true;
      return;
    }
    document.getElementById("translation").textContent = data.translations[0];
    document.getElementById("score").textContent = data.scores[0].toFixed(4);
    drawHeatmap(
      document.getElementById("heatmap"),
      data.source_tokens[0],
      data.target_tokens[0],
      data.attention[0],
    );
    result.hidden = false;
    statusLine.textContent = "Done.";
  } catch (error) {
    statusLine.textContent = "Request failed: " + error;
  } finally {
    form.querySelector("button").disabled = false;
  }
}

form.addEventListener("submit", translate);
loadConfig();
