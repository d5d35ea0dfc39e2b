import { describe, expect, it } from "vitest";
import {
  MetricInputError,
  computeBleu,
  contentTokens,
  contextSupport,
  corpusBleu,
  exactMatch,
  lcsLength,
  normalizeAnswer,
  rouge,
  rougeTokenize,
  scoreAnswer,
  sentenceBleu,
  tokenF1,
  tokenize13a,
} from "../../../services/evaluation/metrics.ts";
import { porterStem } from "../../../services/evaluation/porter-stemmer.ts";
import { createRandom } from "../../../services/inference/sampler.ts";

// Sources of the published values below (cited again next to each one):
// [RS]  google-research/google-research rouge/rouge_scorer_test.py (the `rouge-score` package);
//       its "*AgainstRouge155" values are from manual runs of the official ROUGE-1.5.5 perl script.
//       Note rouge-score's `score(target, prediction)` takes the reference FIRST; ours takes it second.
// [RSD] google-research/google-research rouge/testdata/{target,prediction}.txt, lines 0 and 1.
// [SB]  mjpost/sacrebleu test/test_bleu.py (corpus BLEU, statistics, smoothing, max order).
// [SBS] mjpost/sacrebleu test/test_sentence_bleu.py (sentence BLEU, examples from issues #98, #141).
// [SQ]  the official SQuAD v1.1 evaluate script (normalize_answer, f1_score, exact_match_score);
//       [TM] Lightning-AI/torchmetrics tests/unittests/text/_inputs.py SAMPLE_1/SAMPLE_2 run it.

/** Python's assertAlmostEqual(expected, actual, places): round(actual - expected, places) == 0. */
function expectPlaces(actual: number, expected: number, places: number): void {
  expect(Math.abs(actual - expected)).toBeLessThan(0.5 * 10 ** -places);
}

// [RSD] rouge/testdata/target.txt and prediction.txt, lines 0 and 1 (random strings, kept verbatim).
const RS_TARGETS = [
  "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L",
  "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN",
];
const RS_PREDICTIONS = [
  "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi",
  "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD",
];

describe("ROUGE (rouge-score)", () => {
  it("matches rouge-score's small unit examples", () => {
    // [RS] testRouge1: score("testing one two", "testing") -> P 1, R 1/3, F 1/2
    const r1 = rouge("testing", "testing one two").rouge1;
    expect(r1.precision).toBeCloseTo(1, 12);
    expect(r1.recall).toBeCloseTo(1 / 3, 12);
    expect(r1.fmeasure).toBeCloseTo(1 / 2, 12);
    // [RS] testRouge2: score("testing one two", "testing one") -> P 1, R 1/2, F 2/3
    const r2 = rouge("testing one", "testing one two").rouge2;
    expect(r2.precision).toBeCloseTo(1, 12);
    expect(r2.recall).toBeCloseTo(1 / 2, 12);
    expect(r2.fmeasure).toBeCloseTo(2 / 3, 12);
    // [RS] testMultipleRougeTypes: rouge1 for the same pair -> P 1, R 2/3, F 4/5
    const multi = rouge("testing one", "testing one two").rouge1;
    expect(multi.precision).toBeCloseTo(1, 12);
    expect(multi.recall).toBeCloseTo(2 / 3, 12);
    expect(multi.fmeasure).toBeCloseTo(4 / 5, 12);
  });

  it("computes ROUGE-L from consecutive and non-consecutive subsequences", () => {
    // [RS] testRougeLConsecutive: score("testing one two", "testing one") -> P 1, R 2/3, F 4/5
    const consecutive = rouge("testing one", "testing one two").rougeL;
    expect(consecutive.precision).toBeCloseTo(1, 12);
    expect(consecutive.recall).toBeCloseTo(2 / 3, 12);
    expect(consecutive.fmeasure).toBeCloseTo(4 / 5, 12);
    // [RS] testRougeLNonConsecutive: score("testing one two", "testing two") -> P 1, R 2/3, F 4/5
    const gapped = rouge("testing two", "testing one two").rougeL;
    expect(gapped.precision).toBeCloseTo(1, 12);
    expect(gapped.recall).toBeCloseTo(2 / 3, 12);
    expect(gapped.fmeasure).toBeCloseTo(4 / 5, 12);
  });

  it("scores an empty prediction 0 on every type", () => {
    // [RS] testRougeEmpty: score("testing one two", "") -> 0, 0, 0 for rouge1/rouge2/rougeL
    for (const score of Object.values(rouge("", "testing one two"))) {
      expect(score).toEqual({ precision: 0, recall: 0, fmeasure: 0 });
    }
  });

  it("finds the LCS length of rouge-score's table example", () => {
    // [RS] testLcsTable: ref [1,2,3,4,5], can [2,5,3,4] -> 3; [8,9] -> 0
    expect(lcsLength(["1", "2", "3", "4", "5"], ["2", "5", "3", "4"])).toBe(3);
    expect(lcsLength(["1", "2", "3", "4", "5"], ["8", "9"])).toBe(0);
  });

  it("matches ROUGE-1.5.5 on rouge-score's test data (ROUGE-1)", () => {
    // [RS] testRouge1AgainstRouge155 (5 places)
    const line0 = rouge(RS_PREDICTIONS[0], RS_TARGETS[0]).rouge1;
    expectPlaces(line0.recall, 0.40741, 5);
    expectPlaces(line0.precision, 0.6875, 5);
    expectPlaces(line0.fmeasure, 0.51163, 5);
    const line1 = rouge(RS_PREDICTIONS[1], RS_TARGETS[1]).rouge1;
    expectPlaces(line1.recall, 0.40476, 5);
    expectPlaces(line1.precision, 0.65385, 5);
    expectPlaces(line1.fmeasure, 0.5, 5);
  });

  it("matches ROUGE-1.5.5 on rouge-score's test data (ROUGE-2)", () => {
    // [RS] testRouge2AgainstRouge155 (5 places)
    const line0 = rouge(RS_PREDICTIONS[0], RS_TARGETS[0]).rouge2;
    expectPlaces(line0.recall, 0.30769, 5);
    expectPlaces(line0.precision, 0.53333, 5);
    expectPlaces(line0.fmeasure, 0.39024, 5);
    const line1 = rouge(RS_PREDICTIONS[1], RS_TARGETS[1]).rouge2;
    expectPlaces(line1.recall, 0.29268, 5);
    expectPlaces(line1.precision, 0.48, 5);
    expectPlaces(line1.fmeasure, 0.36364, 5);
  });

  it("matches ROUGE-1.5.5 on rouge-score's test data (ROUGE-L)", () => {
    // [RS] testRougeLAgainstRouge155 (5 places)
    const line0 = rouge(RS_PREDICTIONS[0], RS_TARGETS[0]).rougeL;
    expectPlaces(line0.recall, 0.40741, 5);
    expectPlaces(line0.precision, 0.6875, 5);
    expectPlaces(line0.fmeasure, 0.51163, 5);
    const line1 = rouge(RS_PREDICTIONS[1], RS_TARGETS[1]).rougeL;
    expectPlaces(line1.recall, 0.40476, 5);
    expectPlaces(line1.precision, 0.65385, 5);
    expectPlaces(line1.fmeasure, 0.5, 5);
  });

  it("matches ROUGE-1.5.5 -m with Porter stemming (ROUGE-1 and ROUGE-2)", () => {
    // [RS] testRouge1AgainstRouge155WithStemming (5 places): stemming adds one unigram match on line 1
    const stem = { useStemmer: true };
    const r1line0 = rouge(RS_PREDICTIONS[0], RS_TARGETS[0], stem).rouge1;
    expectPlaces(r1line0.recall, 0.40741, 5);
    expectPlaces(r1line0.precision, 0.6875, 5);
    expectPlaces(r1line0.fmeasure, 0.51163, 5);
    const r1line1 = rouge(RS_PREDICTIONS[1], RS_TARGETS[1], stem).rouge1;
    expectPlaces(r1line1.recall, 0.42857, 5);
    expectPlaces(r1line1.precision, 0.69231, 5);
    expectPlaces(r1line1.fmeasure, 0.52941, 5);
    // [RS] testRouge2AgainstRouge155WithStemming (5 places)
    const r2line0 = rouge(RS_PREDICTIONS[0], RS_TARGETS[0], stem).rouge2;
    expectPlaces(r2line0.recall, 0.30769, 5);
    expectPlaces(r2line0.precision, 0.53333, 5);
    expectPlaces(r2line0.fmeasure, 0.39024, 5);
    const r2line1 = rouge(RS_PREDICTIONS[1], RS_TARGETS[1], stem).rouge2;
    expectPlaces(r2line1.recall, 0.29268, 5);
    expectPlaces(r2line1.precision, 0.48, 5);
    expectPlaces(r2line1.fmeasure, 0.36364, 5);
  });

  it("stems like NLTK's PorterStemmer", () => {
    // nltk/test/stem.doctest ("Test the stemmer on various pluralised words"), NLTK_EXTENSIONS mode.
    const plurals = [
      "caresses", "flies", "dies", "mules", "denied", "died", "agreed", "owned", "humbled", "sized",
      "meeting", "stating", "siezing", "itemization", "sensational", "traditional", "reference", "colonizer", "plotted",
    ];
    expect(plurals.map(porterStem).join(" ")).toBe(
      "caress fli die mule deni die agre own humbl size meet state siez item sensat tradit refer colon plot",
    );
    // Irregular forms and the short-word guard from nltk/stem/porter.py.
    expect(["skies", "dying", "news", "proceed", "is", "as"].map(porterStem)).toEqual(["sky", "die", "news", "proceed", "is", "as"]);
    // rouge-score stems only tokens longer than 3 characters.
    expect(rougeTokenize("The cats were running", { useStemmer: true })).toEqual(["the", "cat", "were", "run"]);
  });

  it("tokenizes like rouge-score: lowercase ASCII alphanumerics only", () => {
    // rouge/tokenize.py: lower(), re.sub(r"[^a-z0-9]+", " "), split, keep ^[a-z0-9]+$.
    expect(rougeTokenize("Hello, World! It's 2024-01-01.")).toEqual(["hello", "world", "it", "s", "2024", "01", "01"]);
    // Non-ASCII letters are separators, exactly as in rouge-score ("café" -> "caf").
    expect(rougeTokenize("Café Ünïcode")).toEqual(["caf", "n", "code"]);
    expect(rougeTokenize("  ...  ")).toEqual([]);
  });
});

// [SB] test_bleu.py README example: three segments, two reference streams.
const SB_REFS = [
  ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
  ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
];
const SB_HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];

/** sacrebleu.raw_corpus_bleu(hyps, refs, smooth_value): floor smoothing, no tokenization, effective order. */
const rawCorpusBleu = (hyps: string[], refs: string[][], smoothValue = 0.1) =>
  corpusBleu(hyps, refs, { smoothMethod: "floor", smoothValue, tokenize: "none", effectiveOrder: true });

describe("BLEU (sacreBLEU)", () => {
  it("reproduces the README corpus example under each setting", () => {
    // [SB] test_corpus_bleu (EPSILON 1e-8)
    expect(corpusBleu(SB_HYPS, SB_REFS).score).toBeCloseTo(48.530827, 6);
    expect(corpusBleu(SB_HYPS, SB_REFS, { tokenize: "13a" }).score).toBeCloseTo(48.530827, 6);
    expect(corpusBleu(SB_HYPS, SB_REFS, { tokenize: "none" }).score).toBeCloseTo(49.1919566, 6);
    expect(corpusBleu(SB_HYPS, SB_REFS, { smoothMethod: "none" }).score).toBeCloseTo(48.530827, 6);
    // [SB] "ensure that empty hypotheses are not removed"
    expect(corpusBleu(["", "", ""], SB_REFS).score).toBe(0);
  });

  it("follows the maximum n-gram order", () => {
    // [SB] test_max_ngram_order: f"{score:.2f}" for orders 1..6
    const expected = ["77.65", "60.50", "53.93", "48.53", "46.14", "43.28"];
    expected.forEach((value, index) => {
      expect(corpusBleu(SB_HYPS, SB_REFS, { maxNgramOrder: index + 1 }).score.toFixed(2)).toBe(value);
    });
  });

  it("counts matched and total n-grams like sacreBLEU", () => {
    // [SB] test_statistics: counts [4, 2, 1, 0], totals [6, 5, 4, 3]
    const result = rawCorpusBleu(["am I am a character sequence"], [["I am a symbol string sequence a a"]], 0.01);
    expect(result.counts).toEqual([4, 2, 1, 0]);
    expect(result.totals).toEqual([6, 5, 4, 3]);
  });

  it("applies floor smoothing and effective order (raw_corpus_bleu)", () => {
    // [SB] test_raw_bleu (smooth_value .01, EPSILON 1e-8)
    expect(rawCorpusBleu(["this is a test", "another test"], [["ref1", "ref2"]], 0.01).score / 100).toBe(0); // #141
    expect(rawCorpusBleu(["this is a test"], [["this is a test"]], 0.01).score / 100).toBeCloseTo(1, 8);
    expect(rawCorpusBleu(["this is a fest"], [["this is a test"]], 0.01).score / 100).toBeCloseTo(0.223606797749979, 8);
    // [SB] test_effective_order
    expect(rawCorpusBleu(["test"], [["a test"]], 0.01).score / 100).toBeCloseTo(0.3678794411714425, 8);
    expect(rawCorpusBleu(["a test"], [["a test"]], 0.01).score / 100).toBeCloseTo(1, 8);
    expect(rawCorpusBleu(["a little test"], [["a test"]], 0.01).score / 100).toBeCloseTo(0.03218297948685433, 8);
    // [SB] test_offset: floor 0.0 -> 0, the default floor 0.1 -> 0.1555722182
    const hyp = ["am I am a character sequence"];
    const ref = [["I am a symbol string sequence a a"]];
    expect(rawCorpusBleu(hyp, ref, 0).score).toBe(0);
    expect(rawCorpusBleu(hyp, ref).score / 100).toBeCloseTo(0.1555722182, 8);
  });

  it("scores sufficient statistics like BLEU.compute_bleu", () => {
    // [SB] test_scoring: ([9,7,5,3], [10,8,6,4], 11, 11) -> 0.8375922397
    expect(computeBleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11).score / 100).toBeCloseTo(0.8375922397, 8);
    // [SB] test_degenerate_statistics (floor smoothing with the given offset): all exactly 0
    const degenerate: Array<[number[], number[], number, number, number]> = [
      [[0, 0, 0, 0], [4, 4, 2, 1], 0, 1, 0.0],
      [[0, 0, 0, 0], [10, 11, 12, 0], 14, 10, 0.0],
      [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.0],
      [[6, 5, 4, 0], [6, 5, 4, 3], 6, 6, 0.0],
      [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.1],
      [[0, 0, 0, 0], [0, 0, 0, 0], 1, 5, 0.01],
    ];
    for (const [correct, total, sysLen, refLen, offset] of degenerate) {
      expect(computeBleu(correct, total, sysLen, refLen, { smoothMethod: "floor", smoothValue: offset }).score).toBe(0);
    }
  });

  it("reproduces sentence BLEU for every smoothing method (issue #98 example)", () => {
    // [SBS] test_api_sentence_bleu, EPSILON 1e-3
    const ref = "producţia de zahăr brut se exprimă în zahăr alb;";
    const sys = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
    const cases: Array<[Parameters<typeof sentenceBleu>[2], number]> = [
      [{ smoothMethod: "exp" }, 8.493],
      [{ smoothMethod: "none" }, 0.0],
      [{ smoothMethod: "floor" }, 4.51688],
      [{ smoothMethod: "floor", smoothValue: 0.1 }, 4.51688],
      [{ smoothMethod: "floor", smoothValue: 0.5 }, 10.1],
      [{ smoothMethod: "add-k" }, 14.882],
      [{ smoothMethod: "add-k", smoothValue: 1 }, 14.882],
      [{ smoothMethod: "add-k", smoothValue: 2 }, 21.389],
      [{ smoothMethod: "exp", tokenize: "none" }, 7.347],
    ];
    for (const [options, expected] of cases) {
      expect(Math.abs(sentenceBleu(sys, [ref], options).score - expected)).toBeLessThan(1e-3);
    }
    // sacreBLEU's sentence_bleu defaults are exp smoothing, 13a, effective order.
    expect(Math.abs(sentenceBleu(sys, [ref]).score - 8.493)).toBeLessThan(1e-3);
  });

  it("gives 0 when nothing matches, whatever the smoothing (issue #141 example)", () => {
    // [SBS] test_api_sentence_bleu_zero: "this is a cat" vs "okay thanks" -> 0.0
    for (const smoothMethod of ["exp", "none", "floor", "add-k"] as const) {
      expect(sentenceBleu("this is a cat", ["okay thanks"], { smoothMethod }).score).toBe(0);
    }
  });

  it("tokenizes like mteval-v13a", () => {
    // Hand-checked against tokenizer_13a.py + tokenizer_re.py rules:
    // punctuation split off; "." and "," kept inside numbers; "-" split after a digit; "'" is not split.
    expect(tokenize13a("It wasn't surprising.")).toEqual(["It", "wasn't", "surprising", "."]);
    expect(tokenize13a("Costs 3.5 or 1,000 (net) in 2020-21 &amp; more")).toEqual([
      "Costs", "3.5", "or", "1,000", "(", "net", ")", "in", "2020", "-", "21", "&", "more",
    ]);
    expect(tokenize13a("line one-\nline two<skipped>")).toEqual(["line", "oneline", "two"]);
  });

  it("clips n-gram counts by the most any single reference allows", () => {
    // Papineni et al. 2002 (BLEU paper), section 2.1: candidate "the the the the the the the" against
    // "The cat is on the mat." / "There is a cat on the mat." has modified unigram precision 2/7
    // ("the" occurs at most twice in one reference). The paper ignores case, hence lowercase here.
    const result = sentenceBleu("the the the the the the the", ["The cat is on the mat.", "There is a cat on the mat."], {
      lowercase: true,
    });
    expect(result.counts[0]).toBe(2);
    expect(result.totals[0]).toBe(7);
  });

  it("picks the closest reference length, the shorter one on a tie", () => {
    // By hand (sacreBLEU _get_closest_ref_len): hyp "a b c" has 3 tokens; refs have 2 and 4 -> tie at
    // distance 1 -> 2. sys_len 3 >= ref_len 2 -> BP 1. Clipped matches against the merged reference n-grams:
    // 1-grams 3/3, 2-grams 2/2, 3-grams 1/1; 4-grams total 0 -> stop, effective order 3 -> BLEU 100.
    // (Choosing 4 would give BP = exp(1 - 4/3) ~ 0.7165.)
    const result = sentenceBleu("a b c", ["a b", "a b c d"]);
    expect(result.refLen).toBe(2);
    expect(result.bp).toBe(1);
    expect(result.score).toBeCloseTo(100, 10);
  });

  it("uses effective order only when asked (corpus default: no)", () => {
    // By hand: "a b c" vs itself has no 4-grams (total 0). compute_bleu stops at n = 4; without effective
    // order the mean still runs over 4 orders and log(0) is floored to -9999999999 -> BLEU 0.
    // sentence_bleu turns effective order on -> mean over 3 orders of log(100) -> 100.
    expect(corpusBleu(["a b c"], [["a b c"]]).score).toBe(0);
    expect(sentenceBleu("a b c", ["a b c"]).score).toBeCloseTo(100, 10);
  });

  it("strips trailing whitespace before 13a, as _preprocess_segment does", () => {
    // "x-\n".rstrip() is "x-" (13a keeps "-" inside a word); without the rstrip, 13a would delete "-\n".
    expect(sentenceBleu("hello world-\n", ["hello world-"]).score).toBeCloseTo(100, 10);
  });

  it("rejects a segment without any reference", () => {
    // sacreBLEU raises "Empty or `None` reference sentence found."
    expect(() => sentenceBleu("a b", [""])).toThrow(MetricInputError);
    expect(() => corpusBleu(["a", "b"], [["a"]])).toThrow(MetricInputError);
    expect(() => computeBleu([1, 0], [2, 1], 2, 2)).toThrow(/need 4 orders/);
  });
});

describe("token F1 and exact match (SQuAD v1.1)", () => {
  it("matches the torchmetrics runs of the official script", () => {
    // [TM] SAMPLE_1: "1976" vs "1976" -> exact_match 100.0, f1 100.0
    expect(exactMatch("1976", "1976")).toBe(1);
    expect(tokenF1("1976", "1976")).toBe(1);
    // [TM] SAMPLE_2: "Hello" vs "World" -> exact_match 0.0, f1 0.0
    expect(exactMatch("Hello", "World")).toBe(0);
    expect(tokenF1("Hello", "World")).toBe(0);
  });

  it("normalizes like normalize_answer", () => {
    // [SQ] lower -> remove string.punctuation -> \b(a|an|the)\b -> ' ' -> ' '.join(split())
    expect(normalizeAnswer("The  Denver Broncos!")).toBe("denver broncos");
    expect(normalizeAnswer("An apple, a day; the end.")).toBe("apple day end");
    // Articles go only as whole words: "another", "theme" and "a1" survive. Punctuation goes first,
    // so "a-b" becomes "ab", which is not an article.
    expect(normalizeAnswer("another theme a1 a-b")).toBe("another theme a1 ab");
    // Python 3's \b is Unicode-aware: in "éa" the "a" follows a letter, so it is not an article.
    expect(normalizeAnswer("éa a é")).toBe("éa é");
    // Only ASCII punctuation is removed (string.punctuation); "–" and "’" stay.
    expect(normalizeAnswer("24–10 Levi’s")).toBe("24–10 levi’s");
  });

  it("computes partial F1 by hand", () => {
    // prediction "Denver Broncos won" -> [denver, broncos, won]; reference "The Denver Broncos." -> [denver, broncos]
    // common = 2, precision = 2/3, recall = 2/2 = 1, F1 = 2 * (2/3) * 1 / (2/3 + 1) = (4/3) / (5/3) = 0.8
    expect(tokenF1("Denver Broncos won", "The Denver Broncos.")).toBeCloseTo(0.8, 12);
    expect(exactMatch("Denver Broncos won", "The Denver Broncos.")).toBe(0);
    // Counter intersection counts repeats: pred "yes yes no" -> [yes, yes, no]; ref "yes no no" -> [yes, no, no];
    // common = min(2,1) + min(1,2) = 2, precision = 2/3, recall = 2/3, F1 = 2/3
    expect(tokenF1("yes yes no", "yes no no")).toBeCloseTo(2 / 3, 12);
    // Articles and punctuation only: normalizes to "" for both -> exact match 1, but F1 0 (num_same == 0).
    expect(exactMatch("The.", "a")).toBe(1);
    expect(tokenF1("The.", "a")).toBe(0);
  });
});

describe("context support", () => {
  it("counts content tokens found in the context", () => {
    // content tokens of "The Broncos won the title in 2016." (stopwords "the", "in" dropped; punctuation removed):
    // [broncos, won, title, 2016]; context has broncos, title, 2016 but not "won" -> 3/4
    expect(contentTokens("The Broncos won the title in 2016.")).toEqual(["broncos", "won", "title", "2016"]);
    const context = "Denver Broncos defeated the Panthers to earn their third Super Bowl title in February 2016.";
    expect(contextSupport("The Broncos won the title in 2016.", context)).toBe(0.75);
  });

  it("is 1 when every content word is in the context and 0 when none is", () => {
    expect(contextSupport("Super Bowl title!", "the third super bowl title")).toBe(1);
    expect(contextSupport("Paris is lovely", "the third super bowl title")).toBe(0);
    // Only stopwords: nothing to support.
    expect(contextSupport("It is what it is.", "it is what it is")).toBe(0);
  });

  it("counts repeated answer tokens each time", () => {
    // [gold, gold, silver]: gold in context, silver not -> 2/3
    expect(contextSupport("gold gold silver", "gold medal")).toBeCloseTo(2 / 3, 12);
  });
});


function randomSentence(random: () => number, vocabulary: readonly string[], maxLength: number): string {
  const length = 1 + Math.floor(random() * maxLength);
  return Array.from({ length }, () => vocabulary[Math.floor(random() * vocabulary.length)]).join(" ");
}

/** Independent reference: LCS length by memoized recursion over suffixes. */
function lcsReference(a: readonly string[], b: readonly string[]): number {
  const memo = new Map<string, number>();
  const go = (i: number, j: number): number => {
    if (i === a.length || j === b.length) return 0;
    const key = `${i},${j}`;
    const cached = memo.get(key);
    if (cached !== undefined) return cached;
    const value = a[i] === b[j] ? 1 + go(i + 1, j + 1) : Math.max(go(i + 1, j), go(i, j + 1));
    memo.set(key, value);
    return value;
  };
  return go(0, 0);
}

describe("properties", () => {
  const vocabulary = ["cat", "dog", "sat", "mat", "the", "on", "a", "red", "ran", "fast"];
  const random = createRandom(42);
  const pairs = Array.from({ length: 60 }, () => [randomSentence(random, vocabulary, 12), randomSentence(random, vocabulary, 12)]);

  it("scores identical strings 1 on every metric", () => {
    for (const text of ["The cat sat on the mat.", "Paris", "Two words", "It was 1976, in Denver."]) {
      const scores = scoreAnswer(text, text, text);
      expect(scores).toEqual({ rouge1: 1, rouge2: expect.any(Number), rougeL: 1, bleu: 1, tokenF1: 1, exactMatch: 1, contextSupport: 1 });
    }
    // ROUGE-2 is 1 whenever there is at least one bigram.
    expect(scoreAnswer("The cat sat on the mat.", "The cat sat on the mat.").rouge2).toBe(1);
  });

  it("scores disjoint strings 0 on every metric", () => {
    const scores = scoreAnswer("Paris is lovely in spring", "Denver won the Super Bowl", "football stadium crowd");
    expect(scores).toEqual({ rouge1: 0, rouge2: 0, rougeL: 0, bleu: 0, tokenF1: 0, exactMatch: 0, contextSupport: 0 });
  });

  it("keeps symmetric metrics symmetric and swaps ROUGE precision and recall", () => {
    for (const [a, b] of pairs) {
      const forward = rouge(a, b);
      const backward = rouge(b, a);
      for (const key of ["rouge1", "rouge2", "rougeL"] as const) {
        expect(backward[key].fmeasure).toBeCloseTo(forward[key].fmeasure, 12);
        expect(backward[key].precision).toBeCloseTo(forward[key].recall, 12);
      }
      expect(tokenF1(b, a)).toBeCloseTo(tokenF1(a, b), 12);
      expect(exactMatch(b, a)).toBe(exactMatch(a, b));
    }
  });

  it("keeps every score in [0, 1] and ROUGE-L between bounds", () => {
    for (const [a, b] of pairs) {
      const scores = scoreAnswer(a, b, b);
      for (const value of Object.values(scores)) {
        expect(value).toBeGreaterThanOrEqual(0);
        expect(value).toBeLessThanOrEqual(1);
      }
      // LCS never exceeds the unigram overlap, so ROUGE-L F1 <= ROUGE-1 F1.
      expect(scores.rougeL).toBeLessThanOrEqual(scores.rouge1 + 1e-12);
    }
  });

  it("computes the LCS exactly (against a recursive reference)", () => {
    for (const [a, b] of pairs) {
      const ta = rougeTokenize(a);
      const tb = rougeTokenize(b);
      expect(lcsLength(ta, tb)).toBe(lcsReference(ta, tb));
      expect(lcsLength(tb, ta)).toBe(lcsReference(ta, tb));
    }
  });

  it("averages sentence statistics into corpus BLEU (sums of counts, not of scores)", () => {
    // Corpus BLEU of the README example equals compute_bleu of the summed per-segment statistics.
    const perSegment = SB_HYPS.map((hyp, i) => corpusBleu([hyp], SB_REFS.map((stream) => [stream[i]])));
    const sum = (pick: (r: (typeof perSegment)[number]) => number) => perSegment.reduce((s, r) => s + pick(r), 0);
    const summed = computeBleu(
      [0, 1, 2, 3].map((n) => sum((r) => r.counts[n])),
      [0, 1, 2, 3].map((n) => sum((r) => r.totals[n])),
      sum((r) => r.sysLen),
      sum((r) => r.refLen),
      { smoothMethod: "exp" },
    );
    expect(summed.score).toBeCloseTo(corpusBleu(SB_HYPS, SB_REFS).score, 10);
  });
});

describe("scoreAnswer", () => {
  it("returns context support only when a context is given", () => {
    expect(scoreAnswer("Denver Broncos", "The Denver Broncos")).not.toHaveProperty("contextSupport");
    expect(scoreAnswer("Denver Broncos", "The Denver Broncos", "Broncos fans")).toHaveProperty("contextSupport", 0.5);
  });

  it("combines the individual metrics", () => {
    const answer = "The Denver Broncos won Super Bowl 50.";
    const reference = "Denver Broncos defeated the Carolina Panthers in Super Bowl 50.";
    const scores = scoreAnswer(answer, reference);
    const r = rouge(answer, reference);
    expect(scores.rouge1).toBe(r.rouge1.fmeasure);
    expect(scores.rouge2).toBe(r.rouge2.fmeasure);
    expect(scores.rougeL).toBe(r.rougeL.fmeasure);
    expect(scores.bleu).toBeCloseTo(sentenceBleu(answer, [reference]).score / 100, 14);
    expect(scores.tokenF1).toBe(tokenF1(answer, reference));
    expect(scores.exactMatch).toBe(0);
    // By hand: rouge tokens answer [the, denver, broncos, won, super, bowl, 50] (7),
    // reference [denver, broncos, defeated, the, carolina, panthers, in, super, bowl, 50] (10);
    // unigram overlap = the, denver, broncos, super, bowl, 50 = 6 -> P 6/7, R 6/10, F1 = 2*(6/7)(3/5)/((6/7)+(3/5)) = 12/17
    expect(scores.rouge1).toBeCloseTo(12 / 17, 12);
  });

  it("rejects a blank reference", () => {
    expect(() => scoreAnswer("anything", "   ")).toThrow(MetricInputError);
  });
});
