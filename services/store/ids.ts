const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** A random id like `ten_3k9x0q2m7f1z`: a readable prefix and 12 base-36 characters (62 bits). */
export function newId(prefix: string, length = 12): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return `${prefix}_${out}`;
}
