// Collecting handwriting on the page: only when the server runs with `digitlab serve --collect NAME`,
// which names the set on <body data-collect="NAME"> (otherwise nothing here shows or asks the server).
//
// Free mode: after each answer, "Right ✓" or "It's a 0…9" saves the drawing with that label
// (POST /api/samples), says "Saved as 3 — Undo" and clears the canvas for the next one.
// Guided mode: "Draw a 3", the ten digits in a shuffled order for N rounds; one press of "Save" (or
// Enter) saves the drawing as the prompted digit, Clear lets the student redo it first.
// Undo removes this page's last saved sample (DELETE /api/samples/{id}), and in guided mode prompts
// that digit again; only the saves of the writer named now, and never after a save that was refused. The writer's name
// and the rounds are remembered by this browser, and so is an unfinished guided run, for its set and writer: a reload
// picks it up where it was, unticking Guided pauses it, and another name typed starts that writer's own (or goes on
// with it). With no name typed, the bar says the saves go in with no name.
// Undo lasts through a reload of the tab. Keys: 0-9 save as that digit (free mode; pressed twice for a drawing the
// model calls no digit), Enter saves ("Right" / the prompted digit).
"use strict";

(() => {
  if (!document.body.dataset.collect) return; // the server does not collect: nothing here shows
  const WRITER_KEY = "digitlab-writer";
  const ROUNDS_KEY = "digitlab-rounds";
  const GUIDED_KEY = "digitlab-guided"; // + ":" + set + ":" + writer: {order, step} of an unfinished guided run
  const UNDO_KEY = "digitlab-undo"; // + ":" + set, in this tab's sessionStorage: the saves Undo can take back
  const el = (id) => document.getElementById(id);
  const a = (d) => (Number(d) === 8 ? `an ${d}` : `a ${d}`); // "an 8", "a 3"

  let collecting = false;
  let refused = false; // the server refused the set on this page's first look (deleted meanwhile: 409): said in the bar
  let answer = null; // the model's answer for the drawing on the canvas, when there is one
  let saving = false;
  const undoStack = []; // this page's saves by the writer named now, newest last: {id, label, step, writer}
  let guided = null; // {order: digits to draw, step: how many are saved}
  let setName = null; // the set's name, once the server has said it
  let armed = null; // a digit key pressed once for a drawing the model calls no digit: pressed again, it saves

  const digitButtons = [];
  for (let d = 0; d < 10; d++) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = String(d);
    b.dataset.digit = String(d);
    b.title = `Save this drawing as ${a(d)} (key ${d})`;
    b.addEventListener("click", () => save(d));
    el("digit-buttons").appendChild(b);
    digitButtons.push(b);
  }
  const countCells = [];
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="d">${d}</span><span class="n">0</span>`;
    el("digit-counts").appendChild(li);
    countCells.push(li);
  }

  const writer = () => el("writer").value.trim() || null;
  const hasDrawing = () => strokes.length > 0 || picture !== null;
  const prompted = () => (guided && guided.step < guided.order.length ? guided.order[guided.step] : null);

  // ---- the buttons and the prompt --------------------------------------------------------------

  function update() {
    const show = collecting && mode === "digit";
    el("collect-bar").hidden = !collecting && !refused;
    el("collect-panel").hidden = !show;
    el("prompt").hidden = !show || !guided;
    el("collect-note").hidden = !collecting || mode === "digit";
    el("guided-options").hidden = mode !== "digit";
    el("no-name").hidden = !collecting || mode !== "digit" || writer() !== null || !!el("writer-error").textContent;
    if (!show) return;
    const target = prompted();
    el("right").hidden = !!guided || !answer || answer.kind !== "digit";
    el("keys").textContent = guided ? "Keys: Enter saves · Esc clears"  // Enter only with a Right button (a teacher)
      : `Keys: 0–9 ${answer && answer.kind === "not_a_digit" ? "pressed twice save" : "save"} as that digit` +
        `${el("right").hidden ? "" : " · Enter: Right"} · Esc clears`;
    el("right").textContent = answer && answer.kind === "digit"
      ? `Right ✓ it's ${a(answer.answer.digit)}` : "Right ✓";
    el("save-guided").hidden = !guided || target === null;
    el("save-guided").textContent = target === null ? "Save" : `Save as ${target} ✓`;
    el("or-its").hidden = !!guided;
    el("digit-buttons").hidden = !!guided;
    el("right").disabled = saving || !hasDrawing();
    el("save-guided").disabled = saving || !hasDrawing();
    for (const b of digitButtons) b.disabled = saving || !hasDrawing();
    const read = answer && answer.kind === "digit" ? answer.answer.digit : null;
    el("or-its").textContent = read === null ? "It's a:" : "No — it's a:";
    const question = guided
      ? (target === null && guided.pending ? "Saving the last one…"
        : target === null ? "All done — thank you! Untick Guided, or tick it again for more."
        : !hasDrawing() ? `Draw ${a(target)}, large, in the middle.`
        : !answer ? "Happy with it? Save it, or Clear and draw it again."
        : read === target ? `The model reads ${a(target)} too. Save it!`
        : answer.kind === "not_a_digit" ? `To the model that is no digit at all. Clear and draw it again, or save it if it is a good ${target}.`
        : read === null ? "The model is not sure what it is. Save it, or Clear and draw it again."
        : `The model reads ${a(read)}. Is it a good ${target}? Save it, or Clear and draw it again.`)
      : !hasDrawing() ? "Draw a digit, then say which it is."
      : !answer ? "Which digit did you draw?"
      : answer.kind === "digit" ? "Is the model right?"
      : answer.kind === "not_a_digit" ? "To the model that is no digit at all. If it is one, which? If not, Clear it: a scribble saved as a digit teaches the wrong thing."
      : "The model is not sure. Which digit is it?";
    // said by a screen reader when it changes (aria-live), not at each of the answers while one digit is drawn
    if (el("label-question").textContent !== question) el("label-question").textContent = question;
    if (guided) {
      const total = guided.order.length;
      const done = guided.step - (guided.pending ? 1 : 0); // the prompt moves on at once, the count once saved
      el("prompt-text").innerHTML = target !== null
        ? `Draw ${target === 8 ? "an" : "a"} <strong id="prompt-digit">${target}</strong>`
        : done < total ? "Saving the last one…" : `All <strong>${total}</strong> saved`;
      const rounds = total / 10;
      const round = Math.min(rounds, Math.floor(guided.step / 10) + 1);
      el("progress").textContent = `${done} / ${total} saved · round ${round} of ${rounds}`;
    }
    countCells.forEach((li, d) => li.classList.toggle("target", d === target));
  }

  // One line under the buttons: what the last press did. kind: "ok" (green), "error" (red), "note" (plain).
  function said(text, kind = "ok", canUndo = undoStack.length > 0) {
    el("saved-text").textContent = text;
    el("saved").classList.toggle("error", kind === "error");
    el("saved").classList.toggle("note", kind === "note");
    el("undo-save").hidden = !canUndo;
  }

  // Undo survives a reload of this tab (a teacher: a student reloaded and their wrong save could not be undone), in
  // guided mode too: the run it was saved in is known again by its order of digits, and its digit asked again
  function keepUndo() {
    if (setName === null) return;
    try {
      const kept = undoStack.map(({ id, label, writer: w, step, run }) =>
        ({ id, label, writer: w, step, order: run ? run.order.join("") : null }));
      sessionStorage.setItem(`${UNDO_KEY}:${setName}`, JSON.stringify(kept));
    } catch {
      // storage switched off (a private window): Undo lasts until the page is reloaded
    }
  }

  function recallUndo() {
    let kept = [];
    try {
      kept = JSON.parse(sessionStorage.getItem(`${UNDO_KEY}:${setName}`) || "[]");
    } catch {
      kept = [];
    }
    const fine = Array.isArray(kept) ? kept.filter((e) => e && typeof e.id === "string" && e.writer === writer()) : [];
    const same = (e) => guided !== null && e.order === guided.order.join("") && Number.isInteger(e.step);
    undoStack.push(...fine.map((e) => ({ id: e.id, label: e.label, writer: e.writer, step: same(e) ? e.step : null,
      run: same(e) ? guided : null })));
    if (undoStack.length) {
      const last = undoStack[undoStack.length - 1];
      const going = guided && guided.step > 0 ? `Guided: going on where ${writer() || "this page"} left off · ` : "";
      said(`${going}Your last save here was ${a(last.label)}: Undo takes it back`, "note", true);
    }
  }

  function showCounts(info) {
    const mine = info.writer_counts;
    const counts = mine || info.counts;
    countCells.forEach((li, d) => { li.querySelector(".n").textContent = String(counts[d]); });
    setName = info.name;
    const yours = mine ? mine.reduce((a, b) => a + b, 0) : null;
    el("counts-title").textContent = mine ? `${info.writer}'s samples per digit (${yours})`
      : `All samples per digit in “${info.name}”`;
    const named = info.named_writers; // how many, not who (a security audit: the class list went to any device)
    el("set-info").textContent = `Saving into handwriting set “${info.name}” · ${info.total} sample${info.total === 1 ? "" : "s"}`
      + ` · ${named} named writer${named === 1 ? "" : "s"}`;
  }

  // ---- talking to the server -------------------------------------------------------------------

  async function call(url, options) {
    try {
      const response = await fetch(url, options);
      const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
      return { status: response.status, body: response.ok ? body : { error: body.error || `HTTP ${response.status}` } };
    } catch (err) {
      return { status: 0, body: { error: `the server did not answer (${err.message})` } };
    }
  }

  async function refresh() {
    const name = writer();
    const { status: code, body } = await call(`/api/samples${name ? `?writer=${encodeURIComponent(name)}` : ""}`);
    // (a 403 here is the page reached by a name the server does not take: said below with what to do, not hidden)
    if (code === 422 && name) { // the name is refused: say why, and count the whole set
      el("writer-error").textContent = `Name not used: ${body.error}`;
      const all = await call("/api/samples");
      if (all.status === 200) {
        collecting = true;
        showCounts(all.body);
      }
      update();
      return false;
    }
    if (code !== 200) { // shown on a fresh page too: a set deleted while the server ran (409) says so and how to go on
      el("writer-error").textContent = body.error;
      refused = !collecting;
      update();
      return false;
    }
    collecting = true;
    refused = false;
    el("writer-error").textContent = "";
    showCounts(body);
    update();
    return true;
  }

  // The drawing as the model judged it (the SEND_SIDE-px grey PNG the page sends to be read), or the uploaded
  // file itself. Saved so, the set holds the very picture the page's answer was about: saved at 400 px, a
  // scribble the page called "not a digit" came back from the set as a sure 7 (a teacher). The picture is drawn
  // now and encoded later, so the pad can be cleared at once.
  function picturePart() {
    if (pictureFile && !strokes.length) {
      const form = new FormData();
      form.append("image", pictureFile, pictureFile.name);
      return { request: Promise.resolve({ method: "POST", body: form }), source: "photo" };
    }
    const request = shrunk(document.createElement("canvas"))
      .then((blob) => ({ method: "POST", body: blob, headers: { "Content-Type": "image/png" } }));
    return { request, source: picture ? "photo" : "drawn" };
  }

  async function save(label) {
    if (saving || !collecting || mode !== "digit" || !hasDrawing() || label === null) return;
    saving = true;
    update();
    const read = answer && answer.kind === "digit" ? answer.answer.digit : null;
    const refused = !!answer && answer.kind === "not_a_digit";
    const answered = !!answer; // a server that did not answer (restarting, say) left none
    const { request, source } = picturePart();
    const kept = { strokes, picture, pictureFile };
    clearAll(); // at once, before anything is awaited: the next digit can be drawn while this one is saved...
    const run = guided, step = guided ? guided.step++ : null; // ...so the prompt moves on with it: "Draw a 2" still
    if (run) run.pending = true; // shown on a cleared pad while a slow save was on its way, a 2 drawn then was saved
    update(); // as the next digit
    said(`Saving as ${label}…`, "note", false); // the count moves when it is saved
    const query = new URLSearchParams({ label: String(label), source });
    const who = writer(); // as sent: another student may type their name while this save is on its way
    if (who) query.set("writer", who);
    const { body } = await call(`/api/samples?${query}`, await request);
    saving = false;
    if (run) run.pending = false;
    if (body.error) {
      // not saved: the drawing comes back, unless a new one was begun, or guided mode was begun, left or begun again
      // meanwhile (under another prompt it would be saved as another digit: a reviewer)
      const back = !hasDrawing() && !current && run === guided;
      if (run && run === guided) unstep(step, back);
      if (back) {
        ({ strokes, picture, pictureFile } = kept);
        redraw();
        schedule(true);
      }
      said(`Not saved: ${body.error}`, "error", false); // Undo here would take back an earlier save, not this one
      if (run && run === guided) keepGuided(); // its prompt put back first: kept as saved, a reload skipped it (review)
      update();
      return;
    }
    if (body.added) {
      el("writer-error").textContent = ""; // saved: "the server did not answer" of a minute ago is over (a teacher)
      if (who === writer()) { // still this student's turn: theirs to undo
        undoStack.push({ id: body.sample.id, label, step, run, writer: who });
        keepUndo();
      }
      const note = (who ? "" : " with no name") + (!answered ? " (the model had not answered)"
        : refused ? " (the model did not take it for a digit)" : read === null ? " (the model was not sure)"
        : read !== label ? ` (the model read ${read})` : "");
      said(`Saved as ${label} ✓${note}`, "ok", undoStack.length > 0 && who === writer());
    } else { // its digit is asked again at the end: its prompt had moved on (a reviewer)
      if (run && run === guided) unstep(step, false);
      said(`Not saved again: this exact picture is in the set already, as ${a(body.sample.label)}`, "note", false);
    }
    if (run && run === guided) keepGuided(); // as the prompts stand now, a refused duplicate's put back
    showCounts(body);
    update();
  }

  async function undoSave() {
    if (saving || !undoStack.length) return;  // a save in flight: keep the entry for the next press
    if (undoStack[undoStack.length - 1].writer !== writer()) { // the name was changed and not yet left
      undoStack.length = 0;
      keepUndo();
      said("Nothing of yours to undo", "note", false);
      return;
    }
    const last = undoStack.pop();
    keepUndo();
    saving = true;
    const { status: code, body } = await call(`/api/samples/${encodeURIComponent(last.id)}`, { method: "DELETE" });
    saving = false;
    if (body.error && code !== 404) {
      undoStack.push(last); // still saved: Undo can be tried again
      keepUndo();
      said(`Not undone: ${body.error}`, "error");
    } else {
      // its digit asked again, in the guided run it was saved in (not another begun since: a reviewer)
      if (guided && last.run === guided && last.step !== null) {
        guided.step = Math.min(guided.step, last.step);
        keepGuided();
      }
      said(code === 404 ? `That ${last.label} was removed already` : `Removed the ${last.label} you saved`);
      if (!body.error) showCounts(body);
      else refresh();
    }
    update();
  }

  // ---- guided mode -----------------------------------------------------------------------------

  // A guided save at ``step`` failed. With its drawing back on the pad, its prompt comes back too; with a new
  // drawing begun (of the prompt now shown), that prompt stays and the failed digit is asked again at the end.
  function unstep(step, back) {
    if (!back) guided.order.push(...guided.order.splice(step, 1));
    guided.step = step;
  }

  function shuffled() {
    const digits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    for (let i = digits.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [digits[i], digits[j]] = [digits[j], digits[i]];
    }
    return digits;
  }

  function startGuided() {
    const rounds = Math.max(1, Math.min(20, Math.round(Number(el("rounds").value) || 5)));
    el("rounds").value = String(rounds);
    remember(ROUNDS_KEY, String(rounds));
    const order = [];
    for (let r = 0; r < rounds; r++) order.push(...shuffled());
    guided = { order, step: 0 };
    keepGuided();
    clearAll();
  }

  // An unfinished guided run, kept by this browser for its set and writer. A teacher: a reload began again at 0 of 20,
  // and the class's counts came out uneven. A run still saving its last drawing is kept without it.
  const guidedKey = () => `${GUIDED_KEY}:${setName}:${(writer() || "").toLowerCase()}`; // "ada" is Ada, as the set

  function keepGuided(run = guided, paused = false) {
    if (setName === null) return;
    const done = run ? run.step - (run.pending ? 1 : 0) : 0;
    remember(guidedKey(), run && done < run.order.length
      ? JSON.stringify({ order: run.order, step: done, paused }) : null);
  }

  // This writer's unfinished run, if the browser keeps one (a paused one, unticked, only when ``paused`` too).
  function resumeGuided(paused = false) {
    let kept = null;
    try {
      kept = JSON.parse(recalled(guidedKey()));
    } catch {
      return false;
    }
    const fine = kept && Array.isArray(kept.order) && kept.order.length % 10 === 0 && kept.order.length <= 200
      && kept.order.every((d) => Number.isInteger(d) && d >= 0 && d <= 9)
      && Number.isInteger(kept.step) && kept.step >= 0 && kept.step < kept.order.length;
    if (!fine || (kept.paused && !paused)) return false;
    guided = { order: kept.order, step: kept.step };
    clearAll(); // a drawing begun under the prompt before is not saved under this one
    el("guided").checked = true;
    el("rounds").value = String(kept.order.length / 10);
    // a run not begun is nothing to go on with (a learner: a new writer's name, then Guided ticked, read "going on")
    said(kept.step > 0 ? `Guided: going on where ${writer() || "this page"} left off` : "", "note", false);
    return true;
  }

  el("guided").addEventListener("change", () => {
    if (el("guided").checked) {
      if (!resumeGuided(true)) startGuided(); // ticked again: the run unticked goes on (a teacher's had restarted)
    } else {
      keepGuided(guided, true); // paused, not thrown away; a reload leaves it unticked
      guided = null;
      said("", "note", false);
    }
    update();
  });
  el("rounds").addEventListener("change", () => {
    if (guided && guided.step === 0) startGuided(); // not started yet: the new length applies
    else remember(ROUNDS_KEY, el("rounds").value);
    update();
  });
  el("right").addEventListener("click", () => answer && answer.kind === "digit" && save(answer.answer.digit));
  el("save-guided").addEventListener("click", () => save(prompted()));
  el("undo-save").addEventListener("click", undoSave);
  el("writer").addEventListener("input", update); // typing is enough to hide "No name typed"
  el("writer").addEventListener("change", async () => {
    undoStack.length = 0; // another student at the same computer: Undo never takes back the one before's saves
    keepUndo();
    said("", "note", false);
    if (await refresh()) {
      remember(WRITER_KEY, writer());
      if (resumeGuided(!!guided)) update(); // this writer's own unfinished run (a paused one, in guided mode)
      else if (guided && guided.step > 0) { // another student: a run of their own, not the rest of the one before's
        startGuided(); // (a teacher: Ben went on at 10 / 20 beside "Ben's samples per digit (0)")
        said(`Guided: a new run for ${writer() || "no name"}`, "note", false);
        update();
      }
    }
  });

  document.addEventListener("keydown", (event) => {
    if (!collecting || mode !== "digit" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, select, textarea, button")) return;
    if (/^[0-9]$/.test(event.key) && !guided) {
      event.preventDefault();
      const digit = Number(event.key);
      // a drawing the model calls no digit is saved by a key only when it is pressed twice (a teacher: scribbles went
      // into the class's set at one stray press); its button saves at one click, as it says what it does
      if (answer && answer.kind === "not_a_digit" && armed !== digit) {
        armed = digit;
        said(`Press ${digit} again to save this as ${a(digit)}: the model did not take it for a digit`, "note",
          undoStack.length > 0);
        return;
      }
      armed = null;
      save(digit);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (guided) save(prompted());
      else if (answer && answer.kind === "digit") save(answer.answer.digit);
    }
  });

  // ---- what the drawing page says --------------------------------------------------------------

  document.addEventListener("digitlab:answer", (event) => { answer = event.detail; armed = null; update(); });
  document.addEventListener("digitlab:reset", () => { answer = null; armed = null; update(); });
  document.addEventListener("digitlab:mode", update);
  pad.addEventListener("pointerup", () => setTimeout(update, 0)); // the drawing exists: the buttons wake up

  el("writer").value = recalled(WRITER_KEY) || "";
  el("rounds").value = recalled(ROUNDS_KEY) || "5";
  refresh().then((fine) => {
    if (!fine) return;
    const resumed = resumeGuided();
    recallUndo(); // after the guided run is back: an undo there asks its digit again
    if (resumed) update();
  });
  // the class's counts grow while others draw: look again now and then, while this page is on screen
  setInterval(() => {
    if (collecting && !saving && document.visibilityState === "visible") refresh();
  }, 15000);
})();
