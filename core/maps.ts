// Get-or-create on a Map or WeakMap, the one helper the memos keyed by objects and names share.

/** The value at `key`, made and set first if there is none. */
export function entry<K, V>(
  map: { get(key: K): V | undefined; set(key: K, value: V): unknown },
  key: K,
  make: () => V,
): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}
