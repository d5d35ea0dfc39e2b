/** A SentencePiece vocabulary as USE ships it: `[piece, logProbability]` in id order. */
export type UnigramVocab = Array<[string, number]>;

const SPACE = "\u2581";
/** Ids 0-5 are unk and control symbols: never matched in text. */
const RESERVED = 6;
const UNK = 0;

interface TrieNode {
  children: Map<string, TrieNode>;
  id: number;
}

/**
 * SentencePiece unigram segmentation (Viterbi over the piece lattice) the way the TF.js Universal
 * Sentence Encoder tokenizes: NFKC, spaces become "▁" with one in front, an unknown character becomes
 * unk (id 0), and consecutive unks merge into one.
 */
export class UnigramTokenizer {
  private readonly root: TrieNode = { children: new Map(), id: -1 };

  constructor(private readonly vocab: UnigramVocab) {
    for (let id = RESERVED; id < vocab.length; id++) this.insert(vocab[id][0], id);
  }

  encode(text: string): number[] {
    const symbols = [...`${SPACE}${text.normalize("NFKC").replace(/ /g, SPACE)}`];
    const n = symbols.length;
    const best = new Float64Array(n + 1);
    const bestSet = new Uint8Array(n + 1);
    const bestId = new Int32Array(n + 1).fill(-1);
    const bestLen = new Int32Array(n + 1);
    bestSet[0] = 1;
    // The lattice edge [start, start + length) as piece `id`; `>=`: among equal scores the later start wins, as in the reference implementation.
    const relax = (start: number, id: number, length: number, logProb: number) => {
      const end = start + length;
      const score = logProb + best[start];
      if (!bestSet[end] || score >= best[end]) {
        best[end] = score;
        bestSet[end] = 1;
        bestId[end] = id;
        bestLen[end] = length;
      }
    };
    for (let start = 0; start < n; start++) {
      // Every piece that starts here (walking the trie), or a lone unk when the first symbol is unknown.
      let node = this.root.children.get(symbols[start]);
      if (!node) relax(start, UNK, 1, 0);
      for (let i = start; node; node = i + 1 < n ? node.children.get(symbols[++i]) : undefined) {
        if (node.id >= 0) relax(start, node.id, i - start + 1, this.vocab[node.id][1]);
      }
    }
    const ids: number[] = [];
    for (let end = n; end > 0; end -= bestLen[end]) ids.push(bestId[end]);
    ids.reverse();
    return ids.filter((id, i) => !(id === UNK && ids[i - 1] === UNK));
  }

  private insert(piece: string, id: number): void {
    let node = this.root;
    for (const symbol of piece) {
      let next = node.children.get(symbol);
      if (!next) node.children.set(symbol, (next = { children: new Map(), id: -1 }));
      node = next;
    }
    node.id = id;
  }
}
