// Builds the page's files into ../export/web_assets (shipped in the wheel as
// seq2seq_attn.export.web_assets; `seq2seq-attn export --web` copies them):
//   - src/*.js, index.html and style.css as they are (ES modules, no bundling needed);
//   - sentencepiece.js: @sctg/sentencepiece-js's processor bundled by esbuild for the
//     browser (its Node-only branches stay unused; its bundled demo models are dropped);
//   - onnxruntime-web's WebAssembly build only (not WebGPU): ort.wasm.min.mjs and the
//     SIMD WebAssembly binary with its loader;
//   - versions.json: the pinned versions, from the installed packages.
// Run `npm ci && npm run build` in web/ (or `make web`).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
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

for (const name of readdirSync(out, { withFileTypes: true })) {
  if (name.isFile() && name.name !== "__init__.py") rmSync(join(out, name.name));
}
mkdirSync(out, { recursive: true });
for (const name of readdirSync(join(here, "src"))) {
  if (name !== "sentencepiece-entry.js") copyFileSync(join(here, "src", name), join(out, name));
}
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
