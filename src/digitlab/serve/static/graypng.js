// The page's drawings as one-channel (grey) PNGs. canvas.toBlob writes four channels (RGBA) even for a grey
// picture; one channel is a quarter of the pixels to inflate and unfilter, so the server reads the page's
// 112-px drawing in less than half the time (BENCHMARKS.md, "Serving on ONNX Runtime"). Each pixel's grey
// is Pillow's own RGB → L luma, so the server sees the numbers it would have computed from toBlob's PNG
// (for a browser that ignores the canvas's grayscale filter, too). Without CompressionStream (before
// Chrome 80, Firefox 113, Safari 16.4), toBlob's RGBA PNG goes instead: the server reads either.
"use strict";

const PNG_SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// One PNG chunk: length, type, data, and the CRC of type and data.
function pngChunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

// `canvas` (opaque; its context made with willReadFrequently) as an 8-bit greyscale PNG blob.
async function grayPng(canvas) {
  if (typeof CompressionStream === "undefined") {
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }
  const { width, height } = canvas;
  const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const rows = new Uint8Array((width + 1) * height); // each row: filter type 0 (none), then its grey values
  for (let y = 0, i = 0, o = 0; y < height; y++) {
    rows[o++] = 0;
    for (let x = 0; x < width; x++, i += 4) {
      rows[o++] = (rgba[i] * 19595 + rgba[i + 1] * 38470 + rgba[i + 2] * 7471 + 0x8000) >>> 16; // Pillow's L
    }
  }
  const zlib = new Blob([rows]).stream().pipeThrough(new CompressionStream("deflate")); // "deflate" is zlib's format
  const idat = new Uint8Array(await new Response(zlib).arrayBuffer());
  const header = new Uint8Array(13); // width, height, 8 bits, colour type 0 (grey), deflate, no filter, no interlace
  const fields = new DataView(header.buffer);
  fields.setUint32(0, width);
  fields.setUint32(4, height);
  header[8] = 8;
  const parts = [PNG_SIGNATURE, pngChunk("IHDR", header), pngChunk("IDAT", idat), pngChunk("IEND", new Uint8Array(0))];
  return new Blob(parts, { type: "image/png" });
}
