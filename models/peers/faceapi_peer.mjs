// face-api benchmark peer: SSD-MobileNetV1 + 68-point landmarks + ResNet descriptor,
// @vladmandic/face-api 1.7.15 on tfjs 4.22 with the wasm backend (no tfjs-node).
//
//   node models/peers/faceapi_peer.mjs --modules "$dir/node/node_modules" [--warmup N] IMAGE...
//
// $dir is what models/peers/setup prints. --modules may be left out; it then defaults to
// ${CONSENTRY_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/consentry/peers}/node/node_modules.
// Everything is required through createRequire() rooted in that dir, so neither NODE_PATH
// nor a node_modules next to this script is needed. Models come from
// <modules>/@vladmandic/face-api/model on disk; nothing touches the network.
//
// Per image (timed end to end with performance.now(), file read and decode included):
//   read file; decode JPEG (jpeg-js) or PNG (pngjs, alpha dropped) by magic bytes;
//   tf.tensor3d(rgb, [h, w, 3], 'int32'); apply the JPEG EXIF orientation with tf ops;
//   detectAllFaces(SsdMobilenetv1Options{minConfidence: 0.5}).withFaceLandmarks()
//   .withFaceDescriptors(); dispose the tensors. "decode_seconds" is the read+decode+tensor
//   (+orientation) share of "seconds", reported because jpeg-js is slow (~0.3 s at 2.8 MP).
// The first image is first run --warmup times (default 1), untimed.
// Stdout: one JSON line per image, then a summary line (see README.md).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

const PEER = 'face-api 1.7.15 (tfjs 4.22 wasm, SSD + lm68 + ResNet)';

function parseArgs(argv) {
  const cache = process.env.CONSENTRY_PEERS_CACHE
    || path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'consentry', 'peers');
  const opts = { modules: path.join(cache, 'node', 'node_modules'), warmup: 1, images: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--modules') opts.modules = argv[++i];
    else if (argv[i] === '--warmup') opts.warmup = Number.parseInt(argv[++i], 10);
    else opts.images.push(argv[i]);
  }
  if (!opts.images.length || !opts.modules || !(opts.warmup >= 0)) {
    console.error('usage: faceapi_peer.mjs [--modules DIR] [--warmup N] IMAGE...');
    process.exit(2);
  }
  opts.modules = path.resolve(opts.modules);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const require = createRequire(path.join(opts.modules, '..', 'peer.js'));
try {
  require.resolve('@vladmandic/face-api/dist/face-api.node-wasm.js');
} catch {
  console.error(`faceapi_peer: no face-api under ${opts.modules}; run models/peers/setup`);
  process.exit(2);
}
const wasm = require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const jpeg = require('jpeg-js');
const { PNG } = require('pngjs');
const tf = faceapi.tf;

// EXIF orientation (tag 0x0112 in IFD0 of the APP1 "Exif" segment); 1 when absent.
function jpegOrientation(buf) {
  let p = 2;
  while (p + 4 <= buf.length && buf[p] === 0xff) {
    const marker = buf[p + 1];
    const len = buf.readUInt16BE(p + 2);
    if (marker === 0xda) break; // start of scan: no more metadata
    if (marker === 0xe1 && buf.toString('latin1', p + 4, p + 10) === 'Exif\0\0') {
      const t = p + 10; // TIFF header
      const le = buf.toString('latin1', t, t + 2) === 'II';
      const u16 = (o) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
      const u32 = (o) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
      const ifd = t + u32(t + 4);
      for (let i = 0, n = u16(ifd); i < n; i++) {
        const e = ifd + 2 + 12 * i;
        if (u16(e) === 0x0112) return u16(e + 8);
      }
      return 1;
    }
    p += 2 + len;
  }
  return 1;
}

// Rotate/flip an [h, w, 3] tensor so that it displays upright (EXIF orientations 2..8).
function orient(t, o) {
  const ops = {
    2: (x) => tf.reverse(x, 1),
    3: (x) => tf.reverse(x, [0, 1]),
    4: (x) => tf.reverse(x, 0),
    5: (x) => tf.transpose(x, [1, 0, 2]),
    6: (x) => tf.reverse(tf.transpose(x, [1, 0, 2]), 1),
    7: (x) => tf.reverse(tf.transpose(x, [1, 0, 2]), [0, 1]),
    8: (x) => tf.reverse(tf.transpose(x, [1, 0, 2]), 0),
  };
  if (!ops[o]) return t;
  const r = tf.tidy(() => ops[o](t));
  t.dispose();
  return r;
}

function decode(file) {
  const buf = readFileSync(file);
  if (buf[0] === 0xff && buf[1] === 0xd8) {
    const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 2048 });
    const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
    return orient(t, jpegOrientation(buf));
  }
  if (buf.toString('latin1', 1, 4) === 'PNG') {
    const png = PNG.sync.read(buf); // always 8-bit RGBA
    const n = png.width * png.height;
    const rgb = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      rgb[3 * i] = png.data[4 * i];
      rgb[3 * i + 1] = png.data[4 * i + 1];
      rgb[3 * i + 2] = png.data[4 * i + 2];
    }
    return tf.tensor3d(rgb, [png.height, png.width, 3], 'int32');
  }
  throw new Error(`${file}: not a JPEG or PNG`);
}

const detectorOptions = new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 });

async function processImage(file) {
  const t0 = performance.now();
  const input = decode(file);
  const decodeS = (performance.now() - t0) / 1000;
  const [height, width] = input.shape;
  try {
    const faces = await faceapi.detectAllFaces(input, detectorOptions)
      .withFaceLandmarks().withFaceDescriptors();
    return { width, height, faces: faces.length, decodeS };
  } finally {
    input.dispose();
  }
}

async function main() {
  wasm.setWasmPaths(path.join(opts.modules, '@tensorflow', 'tfjs-backend-wasm', 'dist') + path.sep);
  await tf.setBackend('wasm');
  await tf.ready();
  const modelDir = path.join(opts.modules, '@vladmandic', 'face-api', 'model');
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);

  const env = {
    backend: tf.getBackend(),
    wasm_simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    wasm_multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
    wasm_threads: typeof wasm.getThreadsCount === 'function' ? wasm.getThreadsCount() : null,
  };

  for (let i = 0; i < opts.warmup; i++) await processImage(opts.images[0]);
  const baseTensors = tf.memory().numTensors;

  let totalS = 0;
  let totalDecodeS = 0;
  let totalFaces = 0;
  for (const file of opts.images) {
    const t0 = performance.now();
    const { width, height, faces, decodeS } = await processImage(file);
    const dt = (performance.now() - t0) / 1000;
    totalS += dt;
    totalDecodeS += decodeS;
    totalFaces += faces;
    console.log(JSON.stringify({
      path: file, width, height, faces,
      seconds: Number(dt.toFixed(6)), decode_seconds: Number(decodeS.toFixed(6)),
    }));
  }
  const leaked = tf.memory().numTensors - baseTensors;
  if (leaked !== 0) console.error(`faceapi_peer: warning: ${leaked} tensors not disposed`);

  const n = opts.images.length;
  console.log(JSON.stringify({
    peer: PEER, images: n, faces: totalFaces, seconds: Number(totalS.toFixed(6)),
    s_per_image: Number((totalS / n).toFixed(6)),
    faces_per_s: totalS > 0 ? Number((totalFaces / totalS).toFixed(3)) : null,
    decode_seconds: Number(totalDecodeS.toFixed(6)),
    ...env,
  }));
}

main().catch((e) => {
  console.error(`faceapi_peer: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
