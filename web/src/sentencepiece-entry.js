// The one export of @sctg/sentencepiece-js the page needs, bundled by build.mjs into
// sentencepiece.js (Google's C++ SentencePiece compiled to WebAssembly, inlined).
export { SentencePieceProcessor } from "@sctg/sentencepiece-js";
