/**
 * Rendezvous (highest random weight) hashing: every node gets a pseudo-random weight per key, and a
 * key's nodes in order of weight are its preference list. Any edge with the same node list computes
 * the same order; when a node leaves, only the keys it was first for move (each to its own second
 * choice), and a node that joins takes about 1/n of the keys, from every other node alike.
 */

/** FNV-1a over the string's UTF-16 code units, finished with murmur3's fmix32 so nearby inputs spread. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The node's weight for the key: a uniform 32-bit number, the same everywhere. */
export function rendezvousWeight(node: string, key: string): number {
  return hash32(`${node}\u0000${key}`);
}

/** The nodes in the key's order of preference (highest weight first; equal weights by node name). */
export function rendezvousOrder<T>(nodes: readonly T[], key: string, name: (node: T) => string): T[] {
  return nodes
    .map((node) => ({ node, id: name(node), weight: rendezvousWeight(name(node), key) }))
    .sort((a, b) => b.weight - a.weight || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((entry) => entry.node);
}
