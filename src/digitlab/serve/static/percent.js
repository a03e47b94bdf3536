// Percentages as the page shows them, the same as the terminal (digitlab.predict): a probability never claims a
// certainty the model lacks, and an "unsure" bar never reads as less than it is. Loaded before app.js.

// An "unsure" threshold, rounded up to 0.1% as digitlab.predict.percent_needed does, so that a confidence under
// it never reads as more than it.
// A threshold over 99.9% gets the decimals it needs not to read "100.0%", as there.
function needed(p) {
  for (let decimals = 1; decimals <= 6; decimals++) {
    const scale = 10 ** decimals, text = (Math.ceil(100 * scale * p - 1e-9) / scale).toFixed(decimals);
    if (Number(text) < 100) return `${text}%`;
  }
  return p < 1 ? "99.999999%" : "100.0%";
}

// A probability as a percentage that claims no certainty the model lacks: ">99.9%", not "100.0%" (and "<0.1%",
// not "0.0%"), as digitlab.predict.shown_percent does for the terminal.
function pct(p, decimals = 1) {
  const text = (100 * p).toFixed(decimals);
  if (text === (100).toFixed(decimals)) return `>${(100 - 10 ** -decimals).toFixed(decimals)}%`;
  if (text === (0).toFixed(decimals)) return `<${(10 ** -decimals).toFixed(decimals)}%`;
  return `${text}%`;
}

// x.toFixed(decimals) as Python's f"{x:.1f}" writes it, as the terminal and the reports show an accuracy: an exact tie
// goes to the even digit (77 of 80 right, 96.25%, is 96.2%), where toFixed goes up (96.3%, beside the report's 96.2%).
function fixed(x, decimals) {
  const long = Math.abs(x).toFixed(decimals + 30), cut = long.length - 30;  // the double's own digits
  const kept = long.slice(0, cut).replace(/\.$/, "");
  if (!/^50*$/.test(long.slice(cut)) || Number(kept[kept.length - 1]) % 2 === 1) return x.toFixed(decimals);
  return `${x < 0 ? "-" : ""}${kept}`;
}

// An unsure answer's confidence beside the bar it missed: as pct, with more decimals, rounded down, where the two
// would read the same ("59.9% · sure from 59.9%"), as digitlab.predict.shown_below does for the terminal.
function below(p, bar) {
  let text = pct(p);
  for (let decimals = 2; decimals <= 7 && text === needed(bar) && p < bar; decimals++) {
    text = `${(Math.floor(100 * p * 10 ** decimals) / 10 ** decimals).toFixed(decimals)}%`;  // in Python's order
  }
  return text;
}

// How often answers were right, rounded down to 0.1%, so that a model that missed a bar never reads as having met
// it: a k-NN right 99.49% of the time from its threshold read "right 99.5%", the very bar its report said it missed
// (a statistician). All right is "100.0%".
function rightShare(p) {
  return `${(Math.floor(1000 * p + 1e-6) / 10).toFixed(1)}%`;
}
