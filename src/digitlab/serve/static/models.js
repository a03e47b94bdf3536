// The model choice. GET /api/models lists the saved runs; the page sends the chosen one's id with each
// prediction and reading (?model=ID), and the server loads that run on first use. The server keeps no
// "current model" of its own: every page chooses for itself, remembered by this browser.
"use strict";

const MODEL_KEY = "digitlab-model";
let models = []; // GET /api/models: the served model first, then the other runs
let servedId = null; // the model the server was started with
let chosenId = null; // this page's choice

// "?model=ID" (or "&model=ID") when a model other than the served one is chosen, else "".
function modelQuery(joiner) {
  return chosenId && chosenId !== servedId ? `${joiner}model=${encodeURIComponent(chosenId)}` : "";
}

function chosenModel() {
  return models.find((m) => m.id === chosenId) || models[0];
}

// Under 1,000 test images (a fine-tuned run's held-out writers) the figure says how few, and its 95% interval:
// "100% of 17 (95% interval 81.6–100%)" must not read as better than MNIST's 99.54% of 10,000.
// A fine-tuned run adds its base model's figure on the same samples and its own on MNIST: "78% of 59" alone, beside
// the base's "99.56%" (MNIST), read as if fine-tuning had made it worse (a teacher).
function accuracyText(m) {
  if (m.accuracy == null) return "unknown";
  const pct = (x) => `${+fixed(100 * x, 1)}`;
  const interval = m.ci95 == null ? null : `95% interval ${pct(m.ci95[0])}–${pct(m.ci95[1])}%`;
  if (m.set != null && m.accuracy_before != null && m.mnist_accuracy != null && m.n_test != null) {
    return `${pct(m.accuracy)}% of ${m.n_test} held-out ${m.set} samples (${interval ? `${interval}; ` : ""}` +
      `before fine-tuning ${pct(m.accuracy_before)}%) · ${fixed(100 * m.mnist_accuracy, 2)}% on MNIST`;
  }
  if (m.n_test == null || interval == null || m.n_test >= 1000) return `${fixed(100 * m.accuracy, 2)}%`;
  return `${pct(m.accuracy)}% of ${m.n_test} (${interval})`;
}

function showModel(m) {
  document.getElementById("model-name").textContent = `${m.model} on ${m.dataset}`;
  document.getElementById("model-accuracy").textContent = accuracyText(m);
  document.getElementById("model-id").textContent = m.id;
  document.getElementById("input-size").textContent = `${m.image_shape[0]}×${m.image_shape[1]}`;
  // an 8×8 model is sure of drawings it gets wrong (benchmarks/bench_handwriting.py): the page says so
  document.getElementById("model-note").hidden = !(m.image_shape[0] === 8 && m.image_shape[1] === 8);
  // a learner was told to train the CNN with one in the menu already: the menu's is named instead
  const mnist = models.filter((o) => o.image_shape[0] === 28);
  const better = mnist.find((o) => o.model === "cnn") || mnist[0];
  document.getElementById("model-note-train").hidden = better !== undefined;
  document.getElementById("model-note-pick").hidden = better === undefined;
  if (better) document.getElementById("model-note-pick").textContent =
    `To draw, choose ${better.model} on ${better.dataset} in the menu below.`;
}

function remember(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // storage switched off (a private window): the choice lasts until the page is reloaded
  }
}

function recalled(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

async function loadModel() {
  try {
    const info = await (await fetch("/api/models")).json();
    models = info.models;
    servedId = info.active;
    const saved = recalled(MODEL_KEY);
    chosenId = models.some((m) => m.id === saved) ? saved : servedId;
    const select = document.getElementById("model-select");
    select.replaceChildren(...models.map((m) => {
      const folder = m.path.split(/[\\/]/).pop();
      // each accuracy is on its own dataset's test part: a fine-tuned model's is on your handwriting, not MNIST,
      // with its base model's on the same samples (two fine-tuned runs' figures are on different students: a
      // teacher took the higher one for the better fine-tuning, which had changed nothing); the menu's line stays
      // short (the header and the option's tooltip say the rest)
      const before = m.accuracy_before == null ? "" : ` (${+fixed(100 * m.accuracy_before, 1)}% before)`;
      const short = m.set != null && m.mnist_accuracy != null
        ? `${+fixed(100 * m.accuracy, 1)}% on ${m.n_test} held-out ${m.set} samples${before}, ` +
          `${fixed(100 * m.mnist_accuracy, 2)}% on MNIST`
        : `${accuracyText(m)} on its ${m.dataset} test part`;
      const served = m.active ? " (served)" : "";
      const option = new Option(`${m.model} on ${m.dataset} · ${short} · ${folder}${served}`, m.id);
      option.title = `${accuracyText(m)} · ${m.path}`;
      return option;
    }));
    select.value = chosenId;
    document.getElementById("model-choice").hidden = models.length < 2;
    showModel(chosenModel());
  } catch (err) {
    status(`could not read the model list (${err.message})`, true);
  }
}

document.getElementById("model-select").addEventListener("change", (event) => {
  chosenId = event.target.value;
  remember(MODEL_KEY, chosenId === servedId ? null : chosenId);
  showModel(chosenModel());
  reset(); // the old model's answer goes; the drawing stays and is asked again
  if (strokes.length || picture) schedule(true);
});
