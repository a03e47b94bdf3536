// digitlab drawing page: pointer-event canvas, live prediction, ten probability bars; a "Number" mode
// with a wider canvas that reads a whole number (POST /api/read) and boxes each digit found.
// Plain JavaScript, no libraries, nothing fetched from outside this server. models.js (loaded first)
// chooses the model; seen.js (loaded before this) draws what the model saw and what it looks at, and
// defines $; graypng.js (loaded before this) encodes the drawings sent as grey PNGs; collect.js (loaded
// after) saves labelled drawings: it listens for the "digitlab:answer", "digitlab:reset" and
// "digitlab:mode" events sent here.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");

// MNIST strokes are about 2 px in a 20 px box, a tenth of the digit's height. A digit drawn
// across ~70% of this 400 px canvas is ~280 px tall, so a 26 px round brush looks the part.
const BRUSH = 26;
// In Number mode the digits are smaller (a date or a phone number: 80-120 px tall on the 800 px canvas), and a
// 26 px brush joined them and filled their loops (a reader: "98765432" read "9?76?32"; with 20 px, right). A tap
// (a point, a colon's dot) stays 26 px across.
const NUMBER_BRUSH = 20;
const brush = () => (mode === "number" ? NUMBER_BRUSH : BRUSH);
const PAPER = "#ffffff";
const INK = "#000000";
const MIN_INTERVAL_MS = 80; // at most ~12 predictions a second while drawing
const TYPING = "textarea, select, input:not([type=file]):not([type=radio]):not([type=checkbox]):not([type=button])";
const WAIT_NOTE_MS = 1000; // an answer not back in a second: "Waiting for the server…"
const ANSWER_TIMEOUT_MS = 20000; // not back in 20 s: given up, said, and the next drawing sent
const UNLIKE = "might not be a digit: only 3 in 100 digits look this unusual to it"; // predict.UNLIKE_WORDS
// A learner wrote "12" in Digit mode and was told only to draw one digit; `predict` points to `read` for such a picture
const SEVERAL = "Two digits or more? Choose Number above: it reads whole numbers";
// The drawing is shrunk here before it is sent: the server crops, scales and centres it to 28×28
// anyway, so 112 px (4× that) loses nothing it uses and the PNG is ~0.5 KB instead of ~10 KB: one grey
// channel (graypng.js, loaded before this), which the server reads in less than half the time of RGBA.
const SEND_SIDE = 112;
const small = document.createElement("canvas");
small.width = small.height = SEND_SIDE;
const smallCtx = small.getContext("2d", { willReadFrequently: true }); // read back for each PNG

let strokes = []; // each: array of {x, y} in canvas pixels
let current = null; // the stroke being drawn
let picture = null; // an uploaded ImageBitmap shown under the strokes
let pictureFile = null; // the uploaded file itself (collect.js saves it as the sample's original)
let pictureRead = null; // in Digit mode, an upload Number mode reads as several digits: that reading ("4071")
let inFlight = false;
let dirty = false;
let lastSent = 0;
let generation = 0; // bumps on clear, so late answers for an old drawing are dropped
let mode = "digit"; // "digit": one digit, live; "number": a whole number, read when the pen lifts
let mapDigit = null; // the digit whose bar was clicked for the map (send()); null: the answer's
let shownKind = {}; // the answer on show: its kind and digit, for the map's legend until its map comes

// Number mode: an 800×300 canvas, sent at half size (400×150): digits drawn ~200 px tall arrive
// ~100 px tall, plenty for the server to find and prepare each one.
const NUMBER_CANVAS = { width: 800, height: 300 };
const DIGIT_CANVAS = { width: 400, height: 400 };
const NUMBER_SEND_SCALE = 0.5;
const wide = document.createElement("canvas");
const wideCtx = wide.getContext("2d", { willReadFrequently: true });

// ---- drawing ------------------------------------------------------------------------------

// Where an uploaded picture lies on the canvas (fitted, centred), in canvas pixels.
function placement(width, height) {
  const scale = Math.min(pad.width / width, pad.height / height);
  const w = width * scale;
  const h = height * scale;
  return { x: (pad.width - w) / 2, y: (pad.height - h) / 2, w, h };
}

function paper() {
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, pad.width, pad.height);
  if (picture) {
    const at = placement(picture.width, picture.height);
    ctx.drawImage(picture, at.x, at.y, at.w, at.h);
  }
}

function drawStroke(points) {
  ctx.strokeStyle = INK;
  ctx.fillStyle = INK;
  ctx.lineWidth = brush();
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(points[0].x, points[0].y, BRUSH / 2, 0, 2 * Math.PI); // a tap: a point or a colon's dot, as large always
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(points[0].x, points[0].y);
  for (let i = 1; i < points.length - 1; i++) {
    const mx = (points[i].x + points[i + 1].x) / 2;
    const my = (points[i].y + points[i + 1].y) / 2;
    ctx.quadraticCurveTo(points[i].x, points[i].y, mx, my); // smooth through midpoints
  }
  const last = points[points.length - 1];
  ctx.lineTo(last.x, last.y);
  ctx.stroke();
}

function redraw() {
  paper();
  for (const s of strokes) drawStroke(s);
  if (current) drawStroke(current);
}

function position(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) / box.width) * pad.width,
    y: ((event.clientY - box.top) / box.height) * pad.height,
  };
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 && event.pointerType === "mouse") return;
  event.preventDefault(); // which also keeps the focus where it was: hand it back to the page, so the keys
  const focused = document.activeElement; // that save a digit are not typed into the name box last clicked
  if (focused && focused !== document.body && focused.blur) focused.blur();
  pad.setPointerCapture(event.pointerId);
  current = [position(event)];
  redraw();
  if (mode === "digit") schedule(); // a number is read when the pen lifts
});

pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) current.push(position(e));
  redraw();
  if (mode === "digit") schedule();
});

function endStroke(event) {
  if (!current) return;
  if (event && pad.hasPointerCapture(event.pointerId)) pad.releasePointerCapture(event.pointerId);
  strokes.push(current);
  current = null;
  redraw();
  schedule(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// How many parts the pen's strokes make side by side, ink apart (a digit is one, even a 4 or a 5 of two strokes;
// "12" is two); 0 for an uploaded picture, whose marks the page does not know.
function sideBySide() {
  if (picture || mode !== "digit") return 0;
  const spans = strokes.map((s) => [Math.min(...s.map((p) => p.x)), Math.max(...s.map((p) => p.x))]);
  spans.sort((a, b) => a[0] - b[0]);
  let parts = 0;
  let end = -Infinity;
  for (const [left, right] of spans) {
    if (left > end + brush()) parts += 1; // a gap of paper between the inks, each stroke brush() wide
    end = Math.max(end, right);
  }
  return parts;
}

// Several digits side by side: the strokes drawn, or an upload Number mode reads as several digits (a learner
// uploaded "4071" in Digit mode and got one digit, unsure; `digitlab predict` pointed to `read`, the page did not)
const several = () => sideBySide() > 1 || (mode === "digit" && pictureRead !== null);
function noteSeveral() { // on the answer's line, in place of what it said
  $("unsure").textContent = pictureRead === null ? SEVERAL : `${SEVERAL} (it reads this picture as ${pictureRead})`;
  $("unsure").title = "";
  $("unsure").hidden = false;
}

function undo() {
  if (current) return;
  if (strokes.length) strokes.pop();
  else picture = pictureFile = pictureRead = null;
  redraw();
  if (strokes.length || picture) schedule(true);
  else reset();
}

function clearAll() {
  strokes = [];
  current = null;
  picture = null;
  pictureFile = pictureRead = null;
  redraw();
  reset();
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clearAll);
document.addEventListener("keydown", (event) => {
  // typing a name, Ctrl+Z undoes the typing and Esc leaves the box: neither touches the drawing (a pupil lost strokes);
  // on a button, a radio, a checkbox or the upload they act on the drawing as ever
  if (event.target.closest && event.target.closest(TYPING)) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "Escape") {
    clearAll();
  }
});

// ---- talking to the server ----------------------------------------------------------------

function schedule(now = false) {
  dirty = true;
  const wait = now ? 0 : Math.max(0, MIN_INTERVAL_MS - (performance.now() - lastSent));
  setTimeout(pump, wait);
}

async function pump() {
  if (inFlight || !dirty) return;
  if (!strokes.length && !current && !picture) return;
  dirty = false;
  inFlight = true;
  lastSent = performance.now();
  const sentFor = generation;
  // a slow server: "Waiting for the server…" after a second, not "Draw a digit" beside a drawing (a class's projector)
  const waiting = setTimeout(() => { if (sentFor === generation) waitingNote(); }, WAIT_NOTE_MS);
  try {
    if (mode === "number") {
      const answer = await sendNumber(await shrunkWide());
      if (sentFor === generation) showNumber(answer);
    } else {
      const answer = await send(await shrunk());
      if (sentFor === generation) show(answer);
    }
  } finally {
    clearTimeout(waiting);
    inFlight = false;
    if (dirty) schedule();
  }
}

// A drawing waiting for its answer for a second or more: said where the answer goes.
function waitingNote() {
  const where = mode === "number" ? $("number-note") : $("confidence");
  if (mode !== "number") {
    blankAnswer(); // the bars of a drawing since changed are not this one's
    document.dispatchEvent(new CustomEvent("digitlab:answer", { detail: null })); // nor is its answer, to save by
  }
  where.textContent = "Waiting for the server…";
}

// The drawing at SEND_SIDE px, grey (black ink on white paper), as a PNG blob. Drawn at once into ``into``
// (a save gives its own canvas, so that the next prediction cannot draw over it while it is encoded).
async function shrunk(into = small) {
  const ctx = into === small ? smallCtx : into.getContext("2d", { willReadFrequently: true });
  into.width = into.height = SEND_SIDE;
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, SEND_SIDE, SEND_SIDE);
  ctx.filter = "grayscale(1)";
  ctx.drawImage(pad, 0, 0, SEND_SIDE, SEND_SIDE);
  ctx.filter = "none";
  return grayPng(into);
}

// Number mode: the wide drawing at half size, grey, as a PNG blob.
async function shrunkWide() {
  wide.width = Math.round(pad.width * NUMBER_SEND_SCALE);
  wide.height = Math.round(pad.height * NUMBER_SEND_SCALE);
  wideCtx.imageSmoothingEnabled = true;
  wideCtx.imageSmoothingQuality = "high";
  wideCtx.fillStyle = PAPER;
  wideCtx.fillRect(0, 0, wide.width, wide.height);
  wideCtx.filter = "grayscale(1)";
  wideCtx.drawImage(pad, 0, 0, wide.width, wide.height);
  wideCtx.filter = "none";
  return grayPng(wide);
}

// A drawing goes as the PNG body itself; an uploaded file (any format) as a multipart form with its name.
// The answer's JSON, or {error: "one line"} when the server refused or did not answer.
async function post(url, blob, name) {
  let request;
  if (name === undefined) {
    request = { method: "POST", body: blob, headers: { "Content-Type": "image/png" } };
  } else {
    const form = new FormData();
    form.append("image", blob, name);
    request = { method: "POST", body: form };
  }
  // a drawing (half a kilobyte) not answered in ANSWER_TIMEOUT_MS: given up, so that the drawings since are sent (a
  // stalled server had held the page on one request, deaf to Clear and to new drawings, for as long as it stalled);
  // not an upload, whose megabytes may take longer than that on a slow link however quick the server
  const timeout = new AbortController();
  const timer = name === undefined ? setTimeout(() => timeout.abort(), ANSWER_TIMEOUT_MS) : null;
  try {
    const response = await fetch(url, { ...request, signal: timeout.signal });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) return { error: body.error || `HTTP ${response.status}` };
    return body;
  } catch (err) {
    return { error: timeout.signal.aborted
      ? `the server has not answered in ${ANSWER_TIMEOUT_MS / 1000} s (busy, or stopped): draw again to retry`
      : "the server did not answer: is digitlab serve still running? Draw again once it is" };
  } finally {
    clearTimeout(timer);
  }
}

// POST /api/read: a whole number.
function sendNumber(blob, name) {
  return post(`/api/read${modelQuery("?")}`, blob, name);
}

// POST /api/predict. `input=true`: the answer also holds the 28×28 picture the model saw, shown beside
// the bars; explain=true only while the toggle is on: the map and the first layer cost the server a few ms.
// With the map on, a digit chosen by clicking its bar (mapDigit) is the one the map explains: "why not a 1?"
// (a teacher's class asked; the map had only ever explained the answer).
function send(blob, name) {
  const chosen = explainOn() && mapDigit !== null ? `&explain_digit=${mapDigit}` : "";
  const query = (explainOn() ? "?input=true&explain=true" + chosen : "?input=true") + modelQuery("&");
  return post(`/api/predict${query}`, blob, name);
}

// The server reads files of at most 5 MiB and pictures of at most 4096 px a side other than JPEGs
// (digitlab.data.image_files.MAX_BYTES and MAX_SIDE); a phone's photo is often more.
const MAX_UPLOAD = 5 * 1024 * 1024;
const MAX_UPLOAD_SIDE = 4096;
const SHRUNK_SIDE = 2048;

// A picture over those limits, drawn here on white at SHRUNK_SIDE px on its longer side and sent as a JPEG,
// with a note saying so; a file the browser cannot draw goes as it is (the server says what is wrong).
async function shrunkFor(file, bitmap) {
  if (!bitmap || (file.size <= MAX_UPLOAD && Math.max(bitmap.width, bitmap.height) <= MAX_UPLOAD_SIDE)) {
    return [file, ""];
  }
  const scale = Math.min(1, SHRUNK_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; // a JPEG has no transparency: see-through paper becomes white, not black
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  if (!blob) return [file, ""];
  const name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
  const note = ` (${(file.size / 2 ** 20).toFixed(1)} MiB, ${bitmap.width}×${bitmap.height}: sent at ` +
    `${canvas.width}×${canvas.height}, the server takes ${MAX_UPLOAD / 2 ** 20} MiB and ${MAX_UPLOAD_SIDE} px)`;
  return [new File([blob], name, { type: "image/jpeg" }), note];
}

$("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  const sentFor = ++generation; // a Clear, or another picture, while this one is read makes it stale
  strokes = [];
  current = null;
  let bitmap = null;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    bitmap = null; // the browser cannot show it; the server may still read it (e.g. TIFF)
  }
  const [sent, note] = await shrunkFor(file, bitmap);
  if (sentFor !== generation) return;
  picture = bitmap;
  pictureFile = sent; // what the server read is what a collected sample keeps
  pictureRead = null; // a new picture: one digit or several, not known yet
  const source = file.name + note;
  redraw();
  status(`Reading ${source}…`);
  if (mode === "number") {
    const answer = await sendNumber(sent, sent.name);
    if (sentFor === generation) showNumber(answer, source);
  } else {
    const answer = await send(sent, sent.name);
    if (sentFor !== generation) return;
    show(answer, source);
    if (answer.error) return;
    const number = await sendNumber(sent, sent.name); // one digit, or a whole number?
    if (sentFor !== generation || mode !== "digit" || number.error || number.digits.length < 2) return;
    pictureRead = number.text.replace(/\n/g, " ");
    noteSeveral(); // not the answer shown again, which a newer one (its map) may have replaced
  }
});

// ---- showing the answer -------------------------------------------------------------------

const bars = [];
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.dataset.digit = String(d);
  // the digit is a button, enabled with the map on: a keyboard reaches "why not a 1?" too (a teacher)
  li.innerHTML = `<button type="button" class="label" disabled aria-label="Show what the model looks at for ${d}">` +
    `${d}</button><span class="track"><span class="bar" data-digit="${d}"></span></span><span class="pct">–</span>`;
  li.addEventListener("click", (event) => { // the map for this digit; its bar again: the answer's map
    // clicked with a mouse, the digit's button gives the focus back: the collecting keys (0-9, Enter) go on working
    if (event.detail > 0) li.querySelector(".label").blur();
    if (!explainOn() || mapless || mode !== "digit") return; // the track and the percentage too (a reviewer)
    mapDigit = mapDigit === d ? null : d;
    if (strokes.length || picture) schedule(true);
  });
  $("bars").appendChild(li);
  bars.push(li);
}

// the bars' digits are buttons only with the map on, and a map to show (a k-NN has none: its bars were marked "the
// digit you chose" with nothing drawn; an audit)
let mapless = false; // the last answer that asked for a map came without one
const enableBarDigits = () => bars.forEach((li) => { li.querySelector(".label").disabled = !explainOn() || mapless; });

// What a screen reader says of an answer, once: the digit and how sure ("7, 99.2% sure"), "Not sure — is it a 4 or a
// 9?", "That doesn't look like a digit", or why there is no answer. The answer's own boxes are not read out (a pupil's
// reader said only "7", or "?", and "answered in 3.0 ms by cnn-…" after each of the 26 answers while one 7 was drawn).
function speak(text) {
  if ($("spoken").textContent !== text) $("spoken").textContent = text;
}

function status(text, isError = false) {
  const line = $(mode === "number" ? "number-status" : "status");
  line.textContent = text;
  line.classList.toggle("error", isError);
}

function reset() {
  generation++;
  dirty = false;
  mapDigit = null; // a new drawing's map explains its answer again
  blankAnswer();
  viewCtx.fillStyle = "#000";
  viewCtx.fillRect(0, 0, view.width, view.height);
  showExplanation({});
  $("number").textContent = "…";
  $("number-note").textContent = "Draw a number, digits side by side";
  $("boxes").replaceChildren();
  status("");
  document.dispatchEvent(new CustomEvent("digitlab:reset"));
}

// The digit's answer area as before any answer: "?", no bars.
function blankAnswer() {
  shownKind = {};
  $("prediction").textContent = "?";
  $("prediction").classList.remove("is-unsure", "is-not-digit");
  $("confidence").textContent = "Draw a digit";
  $("confidence").classList.remove("error");
  $("unsure").hidden = true;
  $("bars").classList.remove("faded");
  for (const li of bars) {
    li.classList.remove("top", "mapped");
    li.querySelector(".label").setAttribute("aria-pressed", "false");
    li.querySelector(".bar").style.width = "0%";
    li.querySelector(".pct").textContent = "–";
  }
}

// An unsure answer's two lines: "Not sure — is it a 4 or a 9?", and its top two with the bar it missed.
function unsureWords(answer) {
  const [first, second] = answer.top;
  const a = (d) => (d === 8 ? `an ${d}` : `a ${d}`);
  // the second digit only from 5% (digitlab.predict.RUNNER_UP): "is it a 1 or an 8?" with the 8 at 0.3% misleads
  const named = second && second.probability >= 0.05;
  const question = named ? `Not sure — is it ${a(first.digit)} or ${a(second.digit)}?`
    : `Not sure — ${a(first.digit)}?`;
  // The bar it missed, or "Not sure" at 98% puzzles anyone who has not read how the threshold was chosen; and why
  // there, where the model has its own figure for it: a teacher's class saw "3: 99.1% · sure from 99.4%" and asked
  // why 99.1% is not sure
  // (a teacher found "where it was right 99.5% of the time on pictures it had not learned from" four lines of jargon
  // on a projector: the short form here, the whole in the line's tooltip)
  const why = typeof answer.sure_right === "number" && answer.calibrated
    ? ` (right ${rightShare(answer.sure_right)} of the time from there)` : "";
  $("unsure").title = why ? `From ${needed(answer.sure_from)} on, its answers were right ` +
    `${rightShare(answer.sure_right)} of the time on pictures it had not learned from` : "";
  const bar = answer.sure_from === undefined ? "" : ` · sure from ${needed(answer.sure_from)}${why}`;
  const own = answer.calibrated ? "" : " · the model's own scores: saved without calibration";
  const shown = (t, k) => (k === 0 && answer.sure_from !== undefined ? below(t.probability, answer.sure_from)
    : pct(t.probability)); // not "1: 59.9% · sure from 59.9%" (a sceptic, in the terminal)
  const top = answer.top.slice(0, 2).map((t, k) => `${t.digit}: ${shown(t, k)}`);
  return [question, top.join(" · ") + bar + own];
}

function show(answer, source) {
  if (answer.error) {
    status(answer.error, true);
    blankAnswer(); // the last answer was for another drawing
    // beside the "?" too: the status line sits under the figures, below the fold on a laptop (a teacher
    // restarting the server saw only "Draw a digit")
    $("confidence").textContent = `No answer: ${answer.error}`;
    $("confidence").classList.add("error");
    speak($("confidence").textContent);
    document.dispatchEvent(new CustomEvent("digitlab:answer", { detail: null })); // an older answer is gone too
    return;
  }
  $("confidence").classList.remove("error");
  const kind = answer.kind || (answer.unsure ? "unsure" : "digit");
  shownKind = { kind, digit: answer.digit };
  $("prediction").classList.toggle("is-unsure", kind === "unsure");
  $("prediction").classList.toggle("is-not-digit", kind === "not_a_digit");
  $("unsure").hidden = kind === "digit" && answer.calibrated;
  $("unsure").title = ""; // an unsure answer's sets it
  if (kind === "not_a_digit") {
    // The detector says this is not a digit: no big number, however sure the classifier would be.
    $("prediction").textContent = "✗";
    $("confidence").textContent = "That doesn't look like a digit";
    // a teacher: a slanted class was told this; short, as four lines moved the bars 6 px down and up while drawing
    $("unsure").textContent = "Draw one digit, large and upright (one leaning far can look like none); the faded " +
      "bars: what a digit model alone would guess";
  } else if (kind === "unsure") {
    $("prediction").textContent = "?";
    [$("confidence").textContent, $("unsure").textContent] = unsureWords(answer);
  } else {
    $("prediction").textContent = String(answer.digit);
    $("confidence").textContent = `${pct(answer.probability)} sure`;
    $("unsure").textContent = "the model's own score: this model was saved without calibration";
  }
  if (several()) noteSeveral(); // two digits drawn, or an uploaded "12" (read as a sure 2, say)
  // The percentages assume the drawing is a digit; the detector's doubt short of "not a digit" is said too (a
  // teacher: a triangle read "0 · 99.8% sure", the detector's score 0.73 against its 0.77)
  if (answer.unlike_a_digit && kind !== "not_a_digit") { // after any note already there (unsure, uncalibrated)
    $("unsure").textContent = ($("unsure").hidden ? "" : $("unsure").textContent + " · ") + UNLIKE;
    $("unsure").hidden = false;
  }
  // Not a digit: the bars fade (they are only what the digit model alone would guess) and none stands out.
  $("bars").classList.toggle("faded", kind === "not_a_digit");
  if (explainOn()) mapless = answer.saliency === null; // an answer with the map off says nothing of it
  $("bars").classList.toggle("clickable", explainOn() && !mapless);
  enableBarDigits();
  // its top bar in the doubt's orange, not a sure answer's blue: unsure, or a digit that might not be one
  $("bars").classList.toggle("doubt", kind === "unsure" || (kind === "digit" && answer.unlike_a_digit === true));
  answer.probabilities.forEach((p, d) => {
    const li = bars[d];
    li.classList.toggle("top", d === answer.digit && kind !== "not_a_digit");
    li.classList.toggle("mapped", answer.saliency_digit === d && d !== answer.digit);
    li.querySelector(".label").setAttribute("aria-pressed", String(li.classList.contains("mapped")));
    li.querySelector(".bar").style.width = `${(100 * p).toFixed(1)}%`;
    li.querySelector(".pct").textContent = pct(p);
  });
  if (answer.input) showInput(answer.input, answer.pixel_max);
  showExplanation(answer);
  status(`${source ? source + ": " : ""}answered in ${answer.milliseconds.toFixed(1)} ms by ${answer.model_id}`);
  speak(kind === "digit" ? `${answer.digit}, ${$("confidence").textContent}` : $("confidence").textContent);
  document.dispatchEvent(new CustomEvent("digitlab:answer", { detail: { answer, kind } }));
}

// Number mode: the number big, and on the canvas a box around each digit found with its confidence
// under it; a doubtful digit (unsure, or not a digit) is a "?". A separator (digitlab.separators: found
// by its shape and place, not by the model) is in the number and has a dotted box named by what it is.
const SEPARATORS = { ".": "point", ",": "comma", "-": "minus", ":": "colon" };
// a "-" after a digit of its number is a dash ("555-1234"); before them all, or after a space (as digitlab.read
// parts two numbers: 1.4 digit heights of paper), a minus ("-40", "12 -5")
function sepName(s, digits) {
  const line = digits.filter((d) => d.line === s.line);
  const before = line.filter((d) => d.box[2] <= s.box[0]).map((d) => d.box[2]);
  if (s.symbol !== "-" || !before.length) return SEPARATORS[s.symbol] || s.symbol;
  const heights = line.map((d) => d.box[3] - d.box[1]).sort((a, b) => a - b);
  return s.box[0] - Math.max(...before) >= 1.4 * heights[Math.floor(heights.length / 2)] ? "minus" : "dash";
}
function showNumber(answer, source) {
  const boxes = $("boxes");
  if (answer.error) {
    boxes.replaceChildren();
    $("number").textContent = "…";
    $("number-note").textContent = "Draw a number, digits side by side";
    status(answer.error, true);
    speak(`No answer: ${answer.error}`);
    return;
  }
  const number = $("number");
  number.replaceChildren();
  const doubted = (d) => d.kind === "digit" && d.unlike_a_digit === true; // read, but it might not be a digit
  let k = 0; // the text's digits and "?"s are answer.digits, in order
  for (const ch of answer.text) {
    if (ch === "\n") { // a line each
      number.appendChild(document.createElement("br"));
      continue;
    }
    const span = document.createElement("span");
    span.textContent = ch;
    if (ch === "?") span.className = "doubtful";
    else if (ch === " ") span.className = "space"; // two numbers on a line
    if (/[0-9?]/.test(ch) && doubted(answer.digits[k++] || {})) { // a teacher: orange boxes, a plain black number
      span.className = "doubtful";
      span.title = UNLIKE;
    }
    number.appendChild(span);
  }
  const unlike = answer.digits.filter(doubted).length;
  const doubtful = answer.digits.filter((d) => d.kind !== "digit").length;
  const count = answer.digits.length;
  const separators = answer.separators || [];
  const unsure = answer.digits.some((d) => d.kind === "unsure") && answer.sure_from !== undefined;
  const also = separators.length
    ? ` and ${separators.length} separator${separators.length === 1 ? "" : "s"}`
      + ` (${separators.map((s) => sepName(s, answer.digits)).join(", ")})`
    : "";
  $("number-note").textContent = (doubtful
    ? `${count} mark${count === 1 ? "" : "s"}${also} found · ${doubtful} doubtful (?)${unsure ? ` · sure from ${needed(answer.sure_from)}` : ""}`
    : `${count} digit${count === 1 ? "" : "s"}${also} found`)
    + (unlike === 1 ? " · 1 (orange) might not be a digit"
      : unlike ? ` · ${unlike} (orange) might not be digits` : "")
    + (answer.calibrated === false ? " · the model's own scores: saved without calibration" : "");
  // the boxes are in the sent picture's pixels: a drawing fills the canvas, an upload lies fitted in it
  const at = picture && source ? placement(answer.width, answer.height) : { x: 0, y: 0, w: pad.width, h: pad.height };
  const frame = (box, className, text, title) => {
    const [x0, y0, x1, y1] = box;
    const div = document.createElement("div");
    div.className = className;
    div.style.left = `${(100 * (at.x + (x0 * at.w) / answer.width)) / pad.width}%`;
    div.style.top = `${(100 * (at.y + (y0 * at.h) / answer.height)) / pad.height}%`;
    div.style.width = `${(100 * (x1 - x0) * at.w) / answer.width / pad.width}%`;
    div.style.height = `${(100 * (y1 - y0) * at.h) / answer.height / pad.height}%`;
    const label = document.createElement("span");
    label.className = "conf";
    label.textContent = text;
    div.title = div.dataset.why = title;
    div.appendChild(label);
    return div;
  };
  boxes.replaceChildren(...answer.digits.map((d) => frame(
    d.box, d.kind === "digit" && !doubted(d) ? "box" : "box doubtful",
    // a mark the detector rejects gets no digit at all, however sure the classifier would be; a doubted digit's
    // "might not be a digit" is in its title and the note (a label that long overlapped its neighbours')
    d.kind === "digit" ? `${d.digit} · ${pct(d.probability)}${doubted(d) ? " ?" : ""}`
      : d.kind === "not_a_digit" ? "? · not a digit"
      : `? · ${d.top.slice(0, 2).map((t) => `${t.digit} ${pct(t.probability)}`).join(" or ")}`,  // to 0.1%, as the bar
    d.kind === "not_a_digit" ? "does not look like a digit" : d.kind === "unsure" ? "not sure"
      : doubted(d) ? UNLIKE : "",
  )), ...separators.map((s) => frame(
    s.box, "box separator", `${s.symbol} ${sepName(s, answer.digits)}`, "a separator, known by its shape and place",
  )));
  unoverlap([...boxes.querySelectorAll(".conf")]);
  status(`${source ? source + ": " : ""}read in ${answer.milliseconds.toFixed(1)} ms by ${answer.model_id}`);
}

// Labels under boxes side by side overlapped (a teacher: "? · 4 51.2% or 9 40.1%" over its neighbour's): each
// that would goes above its box, or a row lower, whichever is free of every label placed (on either line of a
// number); where none is (a worksheet's four lines, shrunk to fit: a teacher's projector showed a heap of labels),
// it is left out, its figures in its box's title, and the note says so. Digits are placed before separators;
// placed again when the window's size changes, as the boxes scale with the pad and the labels do not
function unoverlap(labels) {
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize);
  for (const label of labels) label.classList.remove("above", "lower", "crowded");
  const placed = []; // [left, top, right, bottom] of each label placed
  const items = labels.map((l) => [l, l.getBoundingClientRect(), l.parentElement.getBoundingClientRect(),
    l.parentElement.classList.contains("separator")]).map((it) => [...it, [it[2].left, it[2].top, it[2].right,
    it[2].bottom]]);
  const boxes = items.map((it) => it[4]);
  const meet = (r, p, gap) => r[0] < p[2] + gap && p[0] < r[2] + gap && r[1] < p[3] && p[1] < r[3];
  let left = 0;
  for (const [label, r, box, , own] of items.sort((a, b) => a[3] - b[3] || a[1].left - b[1].left)) {
    const spots = [[r.left, r.top, r.right, r.bottom], [r.left, box.top - 2 - r.height, r.right, box.top - 2],
      [r.left, r.top + 1.5 * rem, r.right, r.bottom + 1.5 * rem]]; // below, above, a row lower
    const free = (s) => !placed.some((p) => meet(s, p, 4))  // nor over another's box: whose label would it be?
      && !boxes.some((b) => b !== own && meet(s, b, 0));
    const at = spots.findIndex(free);
    label.classList.toggle("above", at === 1);
    label.classList.toggle("lower", at === 2);
    label.classList.toggle("crowded", at < 0);
    const why = label.parentElement.dataset.why || "";
    label.parentElement.title = at < 0 ? label.textContent + (why ? ` — ${why}` : "") : why;
    if (at >= 0) placed.push(spots[at]);
    else left += 1;
  }
  const note = $("number-note"), said = " · labels too close to show: point at a box for its figures";
  note.textContent = note.textContent.replace(said, "") + (left ? said : "");
}
window.addEventListener("resize", () => unoverlap([...$("boxes").querySelectorAll(".conf")]));

// ---- the mode -----------------------------------------------------------------------------

function setMode(next) {
  if (next === mode) return;
  clearAll(); // status() and reset() clear the old mode's answer first
  mode = next;
  const size = mode === "number" ? NUMBER_CANVAS : DIGIT_CANVAS;
  pad.width = size.width;
  pad.height = size.height;
  document.body.classList.toggle("number-mode", mode === "number");
  $("digit-result").hidden = mode === "number";
  $("number-result").hidden = mode !== "number";
  $("hint").textContent = mode === "number"
    ? "Write a number, digits side by side (a second line below is read too). It is read when the pen lifts."
    : "Draw one digit, large, in the middle. The prediction follows your pen.";
  pad.setAttribute("aria-label", mode === "number"
    ? "Drawing canvas: write a number with the mouse, a finger or a pen"
    : "Drawing canvas: draw one digit with the mouse, a finger or a pen");
  redraw();
  reset();
  document.dispatchEvent(new CustomEvent("digitlab:mode", { detail: { mode } }));
}

$("mode-digit").addEventListener("change", () => setMode("digit"));
$("mode-number").addEventListener("change", () => setMode("number"));

$("explain").addEventListener("change", () => {
  // the legend fits the answer on show while its map is worked out (the first takes seconds: "for its answer" stood
  // under "That doesn't look like a digit")
  showExplanation(shownKind);
  enableBarDigits(); // at once, not with the next answer
  if (mode === "digit" && (strokes.length || picture)) schedule(true); // ask again, with or without the map
});

redraw();
reset();
loadModel();
