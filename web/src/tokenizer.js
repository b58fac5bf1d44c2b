// SentencePiece in the page: the same C++ library as Python's `sentencepiece` (compiled to
// WebAssembly), so each .model file's own normalizer rules apply and the ids are equal.
// Mirrors seq2seq_attn/tokenizer.py: encode adds [START] and [END], decode drops them.
import { SentencePieceProcessor } from "./sentencepiece.js";

// Reads a varint at `pos` of `bytes`; returns [value, next position].
function readVarint(bytes, pos) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[pos++];
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, pos];
    shift += 7;
  }
}

// The piece strings of a SentencePiece ModelProto, in id order (field 1: repeated
// SentencePiece, whose field 1 is the piece). The WebAssembly build has no IdToPiece.
export function modelPieces(bytes) {
  const decoder = new TextDecoder();
  const pieces = [];
  let pos = 0;
  while (pos < bytes.length) {
    let key;
    [key, pos] = readVarint(bytes, pos);
    const wire = key & 7;
    if (wire === 0) {
      [, pos] = readVarint(bytes, pos);
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 2) {
      let length;
      [length, pos] = readVarint(bytes, pos);
      if (key >>> 3 === 1) pieces.push(pieceOf(bytes.subarray(pos, pos + length), decoder));
      pos += length;
    } else {
      throw new Error(`not a SentencePiece model (wire type ${wire})`);
    }
  }
  return pieces;
}

function pieceOf(message, decoder) {
  let pos = 0;
  while (pos < message.length) {
    let key;
    [key, pos] = readVarint(message, pos);
    if (key === 0x0a) {
      let length;
      [length, pos] = readVarint(message, pos);
      return decoder.decode(message.subarray(pos, pos + length));
    }
    const wire = key & 7;
    if (wire === 0) [, pos] = readVarint(message, pos);
    else if (wire === 5) pos += 4;
    else if (wire === 1) pos += 8;
    else if (wire === 2) {
      let length;
      [length, pos] = readVarint(message, pos);
      pos += length;
    }
  }
  return "";
}

// Lone surrogates become U+FFFD, as Python's tokenizer does (`_scalar_values`).
function scalarValues(text) {
  if (typeof text.toWellFormed === "function") return text.toWellFormed();
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

export class Tokenizer {
  // `bytes`: a Uint8Array of the .model file; `special`: the manifest's special_ids.
  static async fromBytes(bytes, special) {
    const tokenizer = new Tokenizer();
    tokenizer.processor = new SentencePieceProcessor();
    await tokenizer.processor._loadModel(bytes);
    tokenizer.pieces = modelPieces(bytes);
    tokenizer.special = special;
    return tokenizer;
  }

  get vocabSize() {
    return this.pieces.length;
  }

  // [START] ids [END] of one text.
  encode(text) {
    const ids = this.processor.encodeIds(scalarValues(text));
    return [this.special.start, ...ids, this.special.end];
  }

  // The text of `ids`; [PAD], [START] and [END] decode to nothing.
  decode(ids) {
    return this.processor.decodeIds(Array.from(ids, Number));
  }

  // The piece strings of `ids` (for the attention table).
  idToToken(ids) {
    return Array.from(ids, (id) => this.pieces[id]);
  }
}
