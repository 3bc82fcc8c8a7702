// Runs an mmzoo ONNX export from Node.js: onnxruntime-node, @huggingface/tokenizers and pngjs only.
//
//   node predict.mjs MODEL.onnx --text "a red apple" --image apple.png [--top-k 5]
//   node predict.mjs MODEL.onnx --samples samples/samples.jsonl      (one JSON line of probabilities each)
//   node predict.mjs MODEL.onnx --fixture MODEL.fixture              (check this port against `mmzoo export --fixture`)
//
// Models that read images must be exported with `mmzoo export RUN -o DIR --raw-image`: the graph then
// resizes, crops, flattens and normalises the decoded picture itself, so all this script does to an
// image is decode it (PNG here). docs/onnx.md describes every step.
import fs from "node:fs";
import path from "node:path";
import ort from "onnxruntime-node";
import { Tokenizer } from "@huggingface/tokenizers";
import { PNG } from "pngjs";

const SUPPORTED_FORMAT = 1;
const JSON_KEYS = new Set(["labels", "inputs", "outputs", "preprocessing", "members", "spec", "parity"]);

// ---- metadata: onnxruntime-node has no API for metadata_props, so read them from the protobuf.
// ModelProto field 14 = metadata_props, each a StringStringEntryProto {key = 1, value = 2}.
function varint(buf, pos) {
  let value = 0, scale = 1, byte;
  do {
    byte = buf[pos++];
    value += (byte & 0x7f) * scale;
    scale *= 128;
  } while (byte & 0x80);
  return [value, pos];
}

function* fields(buf, start, end) {
  let pos = start;
  while (pos < end) {
    let tag, value;
    [tag, pos] = varint(buf, pos);
    const number = Math.floor(tag / 8), wire = tag & 7;
    if (wire === 0) [value, pos] = varint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let size;
      [size, pos] = varint(buf, pos);
      value = [pos, pos + size];
      pos += size;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    yield [number, wire, value];
  }
}

export function readMetadata(file) {
  const buf = fs.readFileSync(file);
  const meta = {};
  for (const [number, wire, value] of fields(buf, 0, buf.length)) {
    if (number !== 14 || wire !== 2) continue;
    const entry = {};
    for (const [n, w, v] of fields(buf, value[0], value[1])) {
      if (w === 2) entry[n] = buf.toString("utf8", v[0], v[1]);
    }
    if (entry[1]?.startsWith("mmzoo.")) {
      const key = entry[1].slice("mmzoo.".length);
      meta[key] = JSON_KEYS.has(key) ? JSON.parse(entry[2]) : entry[2];
    }
  }
  if (!("format_version" in meta)) throw new Error(`${file} is not an mmzoo export`);
  if (Number(meta.format_version) > SUPPORTED_FORMAT) {
    throw new Error(`${file} uses mmzoo export format ${meta.format_version}; this script reads ${SUPPORTED_FORMAT}`);
  }
  return meta;
}

// ---- text: tokenize, truncate to max_length (keeping the special tokens), pad to the longest with pad_id.
function makeTokenizer(config) {
  const json = JSON.parse(config.tokenizer_json);
  const tokenizer = new Tokenizer(json, {});
  // @huggingface/tokenizers 0.2 returns undefined for a WordLevel out-of-vocabulary token: map it to [UNK].
  const unk = json.model?.unk_token != null ? json.model.vocab?.[json.model.unk_token] : undefined;
  const ids = (text, special) => tokenizer.encode(text, { add_special_tokens: special }).ids.map((id) => id ?? unk);
  return (text) => {
    const full = ids(text, true);
    if (full.length <= config.max_length) return full;
    const plain = ids(text, false);
    const extra = full.length - plain.length; // special tokens, e.g. [CLS] and [SEP]
    let p = 0;
    while (p < extra && full[p] !== plain[0]) p++;
    return [...full.slice(0, p), ...plain.slice(0, config.max_length - extra), ...full.slice(p + plain.length)];
  };
}

function textTensors(tokenize, config, texts) {
  const rows = texts.map(tokenize);
  const width = Math.max(1, ...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * width).fill(BigInt(config.pad_id)); // int64 inputs are BigInt64Array
  const mask = new BigInt64Array(rows.length * width);
  rows.forEach((row, i) => row.forEach((id, j) => {
    ids[i * width + j] = BigInt(id);
    mask[i * width + j] = 1n;
  }));
  return {
    input_ids: new ort.Tensor("int64", ids, [rows.length, width]),
    attention_mask: new ort.Tensor("int64", mask, [rows.length, width]),
  };
}

// ---- images: decode a PNG to RGBA bytes, upright by its eXIf orientation.
// pngjs expands palettes and greyscale, applies tRNS colour keys as alpha, and scales 16-bit samples
// by floor(v * 255 / 65535 + 0.5) = round(v / 257), as mmzoo does.
function pngOrientation(bytes) {
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const size = bytes.readUInt32BE(pos), type = bytes.toString("latin1", pos + 4, pos + 8);
    if (type === "eXIf") {
      const tiff = bytes.subarray(pos + 8, pos + 8 + size);
      const le = tiff.toString("latin1", 0, 2) === "II";
      const u16 = (o) => (le ? tiff.readUInt16LE(o) : tiff.readUInt16BE(o));
      const ifd = le ? tiff.readUInt32LE(4) : tiff.readUInt32BE(4);
      for (let k = 0; k < u16(ifd); k++) {
        const entry = ifd + 2 + 12 * k;
        if (u16(entry) === 0x0112) return u16(entry + 8);
      }
      return 1;
    }
    if (type === "IDAT") return 1; // eXIf must come before the image data
    pos += 12 + size;
  }
  return 1;
}

// Output pixel (x, y) of an output image of width w, for input width W and height H -> input pixel.
const ORIENT = {
  1: (x, y) => [x, y],
  2: (x, y, W) => [W - 1 - x, y],
  3: (x, y, W, H) => [W - 1 - x, H - 1 - y],
  4: (x, y, W, H) => [x, H - 1 - y],
  5: (x, y) => [y, x],
  6: (x, y, W, H) => [y, H - 1 - x],
  7: (x, y, W, H) => [W - 1 - y, H - 1 - x],
  8: (x, y, W) => [W - 1 - y, x],
};

export function decodePng(bytes) {
  const png = PNG.sync.read(bytes);
  const orientation = pngOrientation(bytes);
  const W = png.width, H = png.height;
  if (!ORIENT[orientation] || orientation === 1) return { width: W, height: H, data: new Uint8Array(png.data) };
  const swap = orientation >= 5;
  const width = swap ? H : W, height = swap ? W : H;
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [sx, sy] = ORIENT[orientation](x, y, W, H);
      data.set(png.data.subarray((sy * W + sx) * 4, (sy * W + sx) * 4 + 4), (y * width + x) * 4);
    }
  }
  return { width, height, data };
}

function imageTensor(pictures) {
  const { width, height } = pictures[0];
  if (pictures.some((p) => p.width !== width || p.height !== height)) throw new Error("one batch, one image size");
  const data = new Uint8Array(pictures.length * height * width * 4);
  pictures.forEach((p, i) => data.set(p.data, i * height * width * 4));
  return new ort.Tensor("uint8", data, [pictures.length, height, width, 4]); // RGBA: the graph flattens alpha
}

// ---- the model
export class Model {
  static async load(file) {
    const model = new Model();
    model.meta = readMetadata(file);
    model.labels = model.meta.labels;
    model.session = await ort.InferenceSession.create(file, { executionProviders: ["cpu"] });
    model.tokenizers = {};
    for (const prep of model.meta.preprocessing) {
      if (prep.config.kind === "text") model.tokenizers[prep.id] = makeTokenizer(prep.config);
      if (prep.config.kind === "image") {
        throw new Error(`${path.basename(file)} takes Pillow-resized pixel_values; export it with --raw-image ` +
          "to run it here (see docs/onnx.md)");
      }
    }
    return model;
  }

  feeds(texts, pictures) {
    const feeds = {};
    for (const prep of this.meta.preprocessing) {
      const produced = prep.config.kind === "text"
        ? textTensors(this.tokenizers[prep.id], prep.config, texts)
        : { image: imageTensor(pictures) };
      for (const [field, name] of Object.entries(prep.inputs)) feeds[name] = produced[field];
    }
    return feeds;
  }

  async run(feeds) {
    const out = await this.session.run(feeds, ["probs"]);
    const probs = out.probs, classes = probs.dims[1];
    return Array.from({ length: probs.dims[0] }, (_, i) => Array.from(probs.data.slice(i * classes, (i + 1) * classes)));
  }
}

// ---- the fixture check
function readArray(dir, desc) {
  const buf = fs.readFileSync(path.join(dir, desc.file));
  const copy = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length); // little-endian hosts
  const Typed = { int64: BigInt64Array, float32: Float32Array, uint8: Uint8Array }[desc.dtype];
  return new ort.Tensor(desc.dtype, new Typed(copy), desc.shape);
}

function decodedMismatches(dir, imageFile, desc) {
  const ours = decodePng(fs.readFileSync(path.join(dir, imageFile)));
  const [h, w, c] = desc.shape;
  if (ours.height !== h || ours.width !== w) return h * w * c;
  const want = readArray(dir, desc).data;
  let bad = 0;
  for (let i = 0; i < h * w; i++) {
    const alpha = c === 4 ? want[i * 4 + 3] : 255; // a 3-channel picture is opaque
    for (let k = 0; k < 4; k++) {
      // The colour of a fully transparent pixel never reaches the model (flattening gives the background).
      if (alpha === 0 && k < 3 && ours.data[i * 4 + 3] === 0) continue;
      if (ours.data[i * 4 + k] !== (k < 3 ? want[i * c + k] : alpha)) bad++;
    }
  }
  return bad;
}

async function checkFixture(model, dir) {
  const fixture = JSON.parse(fs.readFileSync(path.join(dir, "fixture.json")));
  const report = { samples: [], decode_cases: [], ok: true };
  for (const sample of fixture.samples) {
    const row = { index: sample.index };
    const given = Object.fromEntries(Object.entries(sample.inputs).map(([k, d]) => [k, readArray(dir, d)]));
    const [fromInputs] = await model.run(given);
    row.max_abs_diff_given_inputs = Math.max(...fromInputs.map((p, j) => Math.abs(p - sample.probs[j])));
    const pictures = sample.image ? [decodePng(fs.readFileSync(path.join(dir, sample.image)))] : [];
    const ours = model.feeds([sample.text], pictures);
    row.token_mismatches = Object.entries(sample.inputs).filter(([, d]) => d.dtype === "int64")
      .filter(([name, d]) => ours[name].data.length !== d.values.length
        || ours[name].data.some((v, j) => v !== BigInt(d.values[j]))).map(([name]) => name);
    if (sample.image) row.decoded_byte_mismatches = decodedMismatches(dir, sample.image, sample.decoded);
    const [fromOurs] = await model.run(ours);
    row.max_abs_diff_own_preprocessing = Math.max(...fromOurs.map((p, j) => Math.abs(p - sample.probs[j])));
    row.ok = row.max_abs_diff_given_inputs <= fixture.probs_tolerance && row.token_mismatches.length === 0
      && !row.decoded_byte_mismatches && row.max_abs_diff_own_preprocessing <= fixture.probs_tolerance;
    report.ok &&= row.ok;
    report.samples.push(row);
  }
  for (const c of fixture.decode_cases) {
    const bad = decodedMismatches(dir, c.image, c.decoded);
    report.decode_cases.push({ image: c.image, decoded_byte_mismatches: bad });
    report.ok &&= bad === 0;
  }
  return report;
}

// ---- command line
function parseArgs(argv) {
  const args = { topK: 5 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--text") args.text = argv[++i];
    else if (flag === "--image") args.image = argv[++i];
    else if (flag === "--samples") args.samples = argv[++i];
    else if (flag === "--fixture") args.fixture = argv[++i];
    else if (flag === "--top-k") args.topK = Number(argv[++i]);
    else if (!args.model) args.model = flag;
    else throw new Error(`unexpected argument ${flag}`);
  }
  if (!args.model) throw new Error("usage: node predict.mjs MODEL.onnx (--text T --image P | --samples F | --fixture D)");
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const model = await Model.load(args.model);
  if (args.fixture) {
    const report = await checkFixture(model, args.fixture);
    console.log(JSON.stringify(report, null, 2));
    return report.ok ? 0 : 1;
  }
  if (args.samples) {
    const dir = path.dirname(args.samples);
    const lines = fs.readFileSync(args.samples, "utf8").split("\n").filter((l) => l.trim());
    for (const line of lines) {
      const s = JSON.parse(line);
      const pictures = s.image ? [decodePng(fs.readFileSync(path.join(dir, s.image)))] : [];
      const [probs] = await model.run(model.feeds([s.text], pictures));
      console.log(JSON.stringify({ id: s.id, probabilities: probs }));
    }
    return 0;
  }
  const pictures = args.image ? [decodePng(fs.readFileSync(args.image))] : [];
  const [probs] = await model.run(model.feeds([args.text ?? ""], pictures));
  const order = probs.map((p, j) => [p, j]).sort((a, b) => b[0] - a[0]).slice(0, args.topK);
  console.log(JSON.stringify({
    top_k: order.map(([p, j]) => ({ label: model.labels[j], probability: p })),
    probabilities: Object.fromEntries(model.labels.map((label, j) => [label, probs[j]])),
  }, null, 2));
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then((code) => process.exit(code), (err) => {
    console.error(`error: ${err.message}`);
    process.exit(2);
  });
}
