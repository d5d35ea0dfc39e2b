/**
 * The Porter stemmer exactly as NLTK's `PorterStemmer()` runs it (mode NLTK_EXTENSIONS, the
 * default), which is what rouge-score uses for `use_stemmer=True`. Expects lowercase words.
 *
 * Porter, M. "An algorithm for suffix stripping." Program 14.3 (1980): 130-137, plus the
 * extensions NLTK documents in nltk/stem/porter.py (irregular forms, short-word guard, ...).
 */

type Condition = (stem: string) => boolean;
/** [suffix, replacement, condition]; suffix "*d" means "ends in a double consonant". */
type Rule = readonly [suffix: string, replacement: string, condition: Condition | null];

const IRREGULAR_FORMS: Readonly<Record<string, string>> = {
  sky: "sky",
  skies: "sky",
  dying: "die",
  lying: "lie",
  tying: "tie",
  news: "news",
  innings: "inning",
  inning: "inning",
  outings: "outing",
  outing: "outing",
  cannings: "canning",
  canning: "canning",
  howe: "howe",
  proceed: "proceed",
  exceed: "exceed",
  succeed: "succeed",
};

const VOWELS = new Set(["a", "e", "i", "o", "u"]);

/** A letter other than a vowel, and other than a "y" that follows a consonant. */
function isConsonant(word: string, i: number): boolean {
  if (VOWELS.has(word[i])) return false;
  if (word[i] === "y") return i === 0 ? true : !isConsonant(word, i - 1);
  return true;
}

/** Porter's m: the number of vowel-consonant sequences in [C](VC){m}[V]. */
function measure(stem: string): number {
  let count = 0;
  for (let i = 1; i < stem.length; i++) {
    if (!isConsonant(stem, i - 1) && isConsonant(stem, i)) count++;
  }
  return count;
}

const hasPositiveMeasure: Condition = (stem) => measure(stem) > 0;
const measureAboveOne: Condition = (stem) => measure(stem) > 1;

function containsVowel(stem: string): boolean {
  for (let i = 0; i < stem.length; i++) if (!isConsonant(stem, i)) return true;
  return false;
}

/** Condition *d. */
function endsDoubleConsonant(word: string): boolean {
  return word.length >= 2 && word.at(-1) === word.at(-2) && isConsonant(word, word.length - 1);
}

/** Condition *o (consonant-vowel-consonant, last not w/x/y), plus NLTK's two-letter vowel-consonant case. */
function endsCvc(word: string): boolean {
  const n = word.length;
  return (
    (n >= 3 &&
      isConsonant(word, n - 3) &&
      !isConsonant(word, n - 2) &&
      isConsonant(word, n - 1) &&
      !["w", "x", "y"].includes(word[n - 1])) ||
    (n === 2 && !isConsonant(word, 0) && isConsonant(word, 1))
  );
}

/** Applies the first rule whose suffix matches; if its condition fails, no later rule is tried. */
function applyRuleList(word: string, rules: readonly Rule[]): string {
  for (const [suffix, replacement, condition] of rules) {
    if (suffix === "*d" && endsDoubleConsonant(word)) {
      const stem = word.slice(0, -2);
      return !condition || condition(stem) ? stem + replacement : word;
    }
    if (word.endsWith(suffix)) {
      const stem = word.slice(0, word.length - suffix.length);
      return !condition || condition(stem) ? stem + replacement : word;
    }
  }
  return word;
}

function step1a(word: string): string {
  if (word.endsWith("ies") && word.length === 4) return word.slice(0, -3) + "ie";
  return applyRuleList(word, [
    ["sses", "ss", null],
    ["ies", "i", null],
    ["ss", "ss", null],
    ["s", "", null],
  ]);
}

function step1b(word: string): string {
  if (word.endsWith("ied")) return word.slice(0, -3) + (word.length === 4 ? "ie" : "i");
  if (word.endsWith("eed")) {
    const stem = word.slice(0, -3);
    return measure(stem) > 0 ? stem + "ee" : word;
  }
  const suffix = ["ed", "ing"].find((s) => word.endsWith(s) && containsVowel(word.slice(0, -s.length)));
  if (suffix === undefined) return word;
  const stem = word.slice(0, -suffix.length);
  const last = stem.at(-1) ?? "";
  return applyRuleList(stem, [
    ["at", "ate", null],
    ["bl", "ble", null],
    ["iz", "ize", null],
    ["*d", last, () => !["l", "s", "z"].includes(last)],
    ["", "e", (s) => measure(s) === 1 && endsCvc(s)],
  ]);
}

function step1c(word: string): string {
  return applyRuleList(word, [["y", "i", (stem) => stem.length > 1 && isConsonant(stem, stem.length - 1)]]);
}

function step2(word: string): string {
  if (word.endsWith("alli") && hasPositiveMeasure(word.slice(0, -4))) return step2(word.slice(0, -4) + "al");
  return applyRuleList(word, [
    ["ational", "ate", hasPositiveMeasure],
    ["tional", "tion", hasPositiveMeasure],
    ["enci", "ence", hasPositiveMeasure],
    ["anci", "ance", hasPositiveMeasure],
    ["izer", "ize", hasPositiveMeasure],
    ["bli", "ble", hasPositiveMeasure],
    ["alli", "al", hasPositiveMeasure],
    ["entli", "ent", hasPositiveMeasure],
    ["eli", "e", hasPositiveMeasure],
    ["ousli", "ous", hasPositiveMeasure],
    ["ization", "ize", hasPositiveMeasure],
    ["ation", "ate", hasPositiveMeasure],
    ["ator", "ate", hasPositiveMeasure],
    ["alism", "al", hasPositiveMeasure],
    ["iveness", "ive", hasPositiveMeasure],
    ["fulness", "ful", hasPositiveMeasure],
    ["ousness", "ous", hasPositiveMeasure],
    ["aliti", "al", hasPositiveMeasure],
    ["iviti", "ive", hasPositiveMeasure],
    ["biliti", "ble", hasPositiveMeasure],
    ["fulli", "ful", hasPositiveMeasure],
    // The "l" of "logi" stays with the stem, so short stems like "geo" qualify.
    ["logi", "log", () => hasPositiveMeasure(word.slice(0, -3))],
  ]);
}

function step3(word: string): string {
  return applyRuleList(word, [
    ["icate", "ic", hasPositiveMeasure],
    ["ative", "", hasPositiveMeasure],
    ["alize", "al", hasPositiveMeasure],
    ["iciti", "ic", hasPositiveMeasure],
    ["ical", "ic", hasPositiveMeasure],
    ["ful", "", hasPositiveMeasure],
    ["ness", "", hasPositiveMeasure],
  ]);
}

function step4(word: string): string {
  return applyRuleList(word, [
    ["al", "", measureAboveOne],
    ["ance", "", measureAboveOne],
    ["ence", "", measureAboveOne],
    ["er", "", measureAboveOne],
    ["ic", "", measureAboveOne],
    ["able", "", measureAboveOne],
    ["ible", "", measureAboveOne],
    ["ant", "", measureAboveOne],
    ["ement", "", measureAboveOne],
    ["ment", "", measureAboveOne],
    ["ent", "", measureAboveOne],
    ["ion", "", (stem) => measure(stem) > 1 && ["s", "t"].includes(stem.at(-1) ?? "")],
    ["ou", "", measureAboveOne],
    ["ism", "", measureAboveOne],
    ["ate", "", measureAboveOne],
    ["iti", "", measureAboveOne],
    ["ous", "", measureAboveOne],
    ["ive", "", measureAboveOne],
    ["ize", "", measureAboveOne],
  ]);
}

/** Both "e" rules are tried (unlike applyRuleList, which stops at the first matching suffix). */
function step5a(word: string): string {
  if (!word.endsWith("e")) return word;
  const stem = word.slice(0, -1);
  if (measure(stem) > 1) return stem;
  if (measure(stem) === 1 && !endsCvc(stem)) return stem;
  return word;
}

function step5b(word: string): string {
  return applyRuleList(word, [["ll", "l", () => measure(word.slice(0, -1)) > 1]]);
}

/** NLTK `PorterStemmer().stem(word)` for a lowercase word. */
export function porterStem(word: string): string {
  if (Object.hasOwn(IRREGULAR_FORMS, word)) return IRREGULAR_FORMS[word];
  if (word.length <= 2) return word;
  return [step1a, step1b, step1c, step2, step3, step4, step5a, step5b].reduce((stem, step) => step(stem), word);
}
