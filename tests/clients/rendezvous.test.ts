/**
 * Rendezvous hashing: the same order everywhere whatever the list's order, minimal movement when a node
 * leaves or joins, and an even spread of many keys.
 */
import { describe, expect, it } from "vitest";
import { rendezvousOrder, rendezvousWeight } from "../../clients/rendezvous.ts";

const NODES = ["http://10.0.0.1:9101", "http://10.0.0.2:9101", "http://10.0.0.3:9101"];
const KEYS = Array.from({ length: 3000 }, (_, i) => `adapter_${i.toString(36)}`);
const first = (nodes: string[], key: string) => rendezvousOrder(nodes, key, (n) => n)[0]!;

describe("rendezvous hashing", () => {
  it("gives every key one order of all the nodes, the same for any order of the list and any caller", () => {
    for (const key of KEYS.slice(0, 200)) {
      const order = rendezvousOrder(NODES, key, (n) => n);
      expect([...order].sort()).toEqual([...NODES].sort());
      expect(rendezvousOrder([...NODES].reverse(), key, (n) => n)).toEqual(order);
      expect(rendezvousOrder([NODES[1]!, NODES[2]!, NODES[0]!], key, (n) => n)).toEqual(order);
    }
    expect(rendezvousWeight(NODES[0]!, "a")).toBe(rendezvousWeight(NODES[0]!, "a"));
    expect(rendezvousWeight(NODES[0]!, "a")).not.toBe(rendezvousWeight(NODES[1]!, "a"));
  });

  it("moves only the leaving node's keys, each to its own second choice", () => {
    const gone = NODES[1]!;
    const rest = NODES.filter((n) => n !== gone);
    let moved = 0;
    for (const key of KEYS) {
      const before = rendezvousOrder(NODES, key, (n) => n);
      const after = first(rest, key);
      if (before[0] === gone) {
        moved++;
        expect(after).toBe(before[1]);
      } else expect(after).toBe(before[0]);
    }
    expect(moved).toBeGreaterThan(KEYS.length / 3 - 150);
    expect(moved).toBeLessThan(KEYS.length / 3 + 150);
  });

  it("gives a joining node about 1/n of the keys, taken from every other node, and moves no other key", () => {
    const joined = "http://10.0.0.4:9101";
    const taken = new Map<string, number>();
    for (const key of KEYS) {
      const before = first(NODES, key);
      const after = first([...NODES, joined], key);
      if (after !== before) {
        expect(after).toBe(joined);
        taken.set(before, (taken.get(before) ?? 0) + 1);
      }
    }
    const total = [...taken.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(KEYS.length / 4 - 150);
    expect(total).toBeLessThan(KEYS.length / 4 + 150);
    for (const node of NODES) expect(taken.get(node) ?? 0).toBeGreaterThan(total / 3 - 100);
  });

  it("spreads many keys as evenly as independent uniform choices would (each node within 4 standard deviations of its share)", () => {
    for (const nodes of [NODES, Array.from({ length: 10 }, (_, i) => `http://node-${i}.fleet.internal:9101`)]) {
      const counts = new Map<string, number>();
      for (const key of KEYS) counts.set(first(nodes, key), (counts.get(first(nodes, key)) ?? 0) + 1);
      const p = 1 / nodes.length;
      const share = KEYS.length * p;
      const sd = Math.sqrt(KEYS.length * p * (1 - p));
      expect(counts.size).toBe(nodes.length);
      for (const n of counts.values()) expect(Math.abs(n - share)).toBeLessThan(4 * sd);
    }
  });
});
