// Builds the vendored files of the page into ../export/web_assets (shipped in the wheel as
// seq2seq_attn.export.web_assets; `seq2seq-attn export --web` copies them). The page's own
// ES modules, index.html and style.css live there too, as written (no bundling needed):
// edit them in place; this build leaves them alone and writes only
//   - sentencepiece.js: @sctg/sentencepiece-js's processor bundled by esbuild for the
//     browser (its Node-only branches stay unused; its bundled demo models are dropped);
//   - onnxruntime-web's WebAssembly build only (not WebGPU): ort.wasm.min.mjs and the
//     SIMD WebAssembly binary with its loader;
//   - versions.json: the pinned versions, from the installed packages.
// Run `npm ci && npm run build` in web/ (or `make web`).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "export", "web_assets");
const ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];
const PACKAGES = ["onnxruntime-web", "@sctg/sentencepiece-js", "esbuild"];

// Node's built-in modules, which the package imports for its Node-only branches (reading a
// model with fs.readFileSync): empty in the browser bundle, where the page hands it bytes.
const nodeBuiltinsAsEmpty = {
  name: "node-builtins-as-empty",
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^(fs|path|url|crypto|module)$/ }, (args) => ({
      path: args.path,
      namespace: "empty",
    }));
    pluginBuild.onLoad({ filter: /.*/, namespace: "empty" }, () => ({ contents: "export default {};" }));
  },
};

const BUILT = [...ORT_FILES, "sentencepiece.js", "versions.json"];
mkdirSync(out, { recursive: true });
for (const name of BUILT) rmSync(join(out, name), { force: true });
for (const name of ORT_FILES) {
  copyFileSync(join(here, "node_modules", "onnxruntime-web", "dist", name), join(out, name));
}
await build({
  entryPoints: [join(here, "src", "sentencepiece-entry.js")],
  outfile: join(out, "sentencepiece.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  minify: true,
  legalComments: "eof",
  plugins: [nodeBuiltinsAsEmpty],
  logLevel: "warning",
});
const versions = Object.fromEntries(
  PACKAGES.map((name) => {
    const manifest = JSON.parse(readFileSync(join(here, "node_modules", name, "package.json")));
    return [name, manifest.version];
  }),
);
writeFileSync(join(out, "versions.json"), `${JSON.stringify(versions, null, 2)}\n`);
console.log(`built ${out}`);
