// What the model saw and what it looks at, drawn from an answer: the 28×28 input (`?input=true`) in the
// "What the model saw" box, and with the "What it looks at" toggle the saliency map laid over it and the
// first layer's maps. Loaded before app.js, which calls showInput() and showExplanation() with each answer;
// the canvases are looked up here, the ids are the page's (index.html).

const $ = (id) => document.getElementById(id);
const view = $("input-view");
const viewCtx = view.getContext("2d");

function showInput(rows, pixelMax) {
  const h = rows.length;
  const w = rows[0].length;
  $("input-size").textContent = `${h}×${w}`;
  const small = new ImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = Math.round((255 * rows[y][x]) / pixelMax);
      const i = 4 * (y * w + x);
      small.data[i] = small.data[i + 1] = small.data[i + 2] = v;
      small.data[i + 3] = 255;
    }
  }
  blowUp(small, viewCtx);
}

// Draw a small ImageData over the whole of a larger canvas, each pixel a sharp square.
function blowUp(image, target) {
  const tmp = document.createElement("canvas");
  tmp.width = image.width;
  tmp.height = image.height;
  tmp.getContext("2d").putImageData(image, 0, 0);
  target.imageSmoothingEnabled = false;
  target.drawImage(tmp, 0, 0, target.canvas.width, target.canvas.height);
}

// ---- what it looks at (issue 13) -----------------------------------------------------------
// With the toggle on, each prediction also asks for `saliency` (H×W, −1..1) and, for a CNN, `activations`
// (its first layer's maps, 0..255): the map is laid over "what the model saw", red where a pixel speaks
// for the answer and blue where it speaks against it; the first layer is a strip of small squares.

const overlay = $("saliency-view");
const overlayCtx = overlay.getContext("2d");
const explainOn = () => $("explain").checked;

function showExplanation(answer) {
  const map = explainOn() ? answer.saliency : null;
  overlayCtx.clearRect(0, 0, overlay.width, overlay.height);
  overlay.hidden = !map;
  $("saliency-legend").hidden = !explainOn();
  // no map (a k-NN; a CNN without Captum): no colours to explain, no bar to tap, and the server's reason instead
  // (before any answer: shown, unless the model's last answer came without one: a cleared pad kept no bar to tap)
  $("saliency-key").hidden = $("saliency-tap").hidden = explainOn()
    && (answer.saliency === null || (answer.saliency === undefined && mapless));
  $("saliency-method").textContent = !explainOn() || answer.saliency_method === undefined ? ""
    : answer.saliency_method ? ` (${answer.saliency_method})`
    : `no map: ${answer.saliency_note || "none for this model"}`;
  // The map explains the digit the model would pick; when that is no answer, the legend says so (a teacher: under
  // "That doesn't look like a digit" it still read "for its answer", of a 4 the page never named).
  const chosen = answer.saliency_digit; // a digit whose bar was clicked: "why not a 1?"
  const against = answer.saliency_against; // then the map weighs it against the answer (its own map alone, scaled to
  // its strongest pixel, showed bright red "for 9" on a clear 7 whose 9 stood at 0.002%: a learner)
  const versus = against !== undefined && against !== null;
  $("saliency-against").textContent = versus ? `for ${against} rather than ${chosen}` : "against";
  $("saliency-for").textContent = versus
    ? `for ${chosen}, the digit you chose (marked red), rather than ${against}; choose it again for the answer's map`
    : answer.kind === "not_a_digit" ? `for ${answer.digit}, the digit a digit model alone would pick (not an answer)`
    : answer.kind === "unsure" ? `for ${answer.digit}, its best guess` : "for its answer";
  if (map) {
    const h = map.length;
    const w = map[0].length;
    const img = new ImageData(w, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = map[y][x];
        const i = 4 * (y * w + x);
        const [r, g, b] = v >= 0 ? [239, 38, 38] : [37, 99, 235];
        img.data[i] = r;
        img.data[i + 1] = g;
        img.data[i + 2] = b;
        // faint values fade out; the strongest pixels are nearly opaque
        img.data[i + 3] = Math.abs(v) < 0.05 ? 0 : Math.round(230 * Math.min(1, Math.sqrt(Math.abs(v))));
      }
    }
    blowUp(img, overlayCtx);
  }
  const maps = explainOn() && answer.activations ? answer.activations : [];
  $("activations").hidden = !maps.length;
  $("activations-which").textContent = answer.filters > maps.length
    ? `the ${maps.length} of its ${answer.filters} filters that answered most strongly`
    : "each square is one filter's answer";
  $("activation-strip").replaceChildren(...maps.map((grid, k) => {
    const c = document.createElement("canvas");
    c.width = grid[0].length;
    c.height = grid.length;
    // the strongest first: a square's place is its rank for this drawing, not the filter's number in the network
    c.title = k === 0 ? "its most active filter" : `its ${["", "2nd", "3rd"][k] || `${k + 1}th`} most active filter`;
    const img = new ImageData(c.width, c.height);
    grid.forEach((row, y) => row.forEach((v, x) => {
      const i = 4 * (y * c.width + x);
      img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
      img.data[i + 3] = 255;
    }));
    c.getContext("2d").putImageData(img, 0, 0);
    return c;
  }));
}
