//! [`SortedMap`]: a map kept as one vector sorted by key, for the per-file
//! maps a run builds once from entries that already come in path order and
//! then mostly reads (the source's files, the manifest's, the disk view).
//!
//! `BTreeMap::from_iter` first collects into a vector, then sorts it (the
//! stable sort allocates a scratch buffer of up to the whole input, sorted
//! or not), then builds nodes while the vector is still held: a map of
//! 100,000 files was held about twice over at the moment it was built, and
//! the source and the home are built at the same time. Here the vector *is*
//! the map: building from ordered entries allocates nothing but them, and a
//! lookup is a binary search (or a [`Cursor`] walk for keys asked in order).

use std::borrow::Borrow;

/// A map in one vector sorted by key, keys unique.
#[derive(Clone, PartialEq, Eq)]
pub struct SortedMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for SortedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

/// Iterator over the entries of a [`SortedMap`], in key order.
pub type Iter<'a, K, V> =
    std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

fn pair<K, V>((k, v): &(K, V)) -> (&K, &V) {
    (k, v)
}

impl<K: Ord, V> SortedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get_key_value(key).map(|(_, v)| v)
    }

    /// The stored key and the value of `key`.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        Some(pair(&self.entries[i]))
    }

    /// The value of `key`, mutable.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        Some(&mut self.entries[i].1)
    }

    /// Whether `key` has an entry.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, returning the value it replaces. Linear in
    /// the entries after `key`: for a few additions to a built map, not for
    /// building one (collect instead).
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.entries.iter().map(pair as fn(&(K, V)) -> (&K, &V))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values in key order, mutable.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Keeps the entries `keep` holds to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// Replaces each key that `other` holds too by `other`'s (equal) key:
    /// for shared keys such as `Arc<str>` paths, the two maps then hold
    /// one allocation per path between them instead of one each. The
    /// order cannot change: only equal keys are swapped.
    pub fn share_keys<V2>(&mut self, other: &SortedMap<K, V2>)
    where
        K: Clone,
    {
        let mut theirs = other.cursor();
        for (k, _) in &mut self.entries {
            if let Some((same, _)) = theirs.get(&*k) {
                *k = same.clone();
            }
        }
    }

    /// A cursor at the start, for keys asked in ascending order.
    pub fn cursor(&self) -> Cursor<'_, K, V> {
        Cursor {
            entries: &self.entries,
            pos: 0,
        }
    }

    /// Restores the invariant after entries were pushed in any order: a
    /// stable sort (skipped when they already are in order, the usual
    /// case), then of equal keys the last pushed wins, as in a `BTreeMap`.
    fn normalise(&mut self) {
        if self.entries.windows(2).all(|w| w[0].0 < w[1].0) {
            return;
        }
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        // `dedup_by` keeps the first of a run; reversed, that is the last.
        self.entries.reverse();
        self.entries.dedup_by(|a, b| a.0 == b.0);
        self.entries.reverse();
    }
}

impl<V> SortedMap<crate::Rel, V> {
    /// [`SortedMap::share_keys`] of this map and of `twin`, whose keys are
    /// this map's own allocations (the view scanned ahead holds the
    /// manifest's paths): a twin's key takes its counterpart's replacement,
    /// found by address with no second search. A twin that holds other
    /// keys as well is shared by search.
    pub fn share_keys_with_twin<V2, V3>(
        &mut self,
        twin: &mut SortedMap<crate::Rel, V3>,
        other: &SortedMap<crate::Rel, V2>,
    ) {
        let mut theirs = other.cursor();
        let tw = &mut twin.entries;
        let mut t = 0;
        for (k, _) in &mut self.entries {
            // The twin's key at `t`, if it is this very allocation, keeps
            // it alive: no other allocation can have its address.
            let twin_here = t < tw.len() && std::ptr::addr_eq(tw[t].0.as_ptr(), k.as_ptr());
            if let Some((same, _)) = theirs.get(&**k) {
                *k = same.clone();
            }
            if twin_here {
                tw[t].0 = k.clone();
                t += 1;
            }
        }
        if t < tw.len() {
            twin.share_keys(other);
        }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = SortedMap {
            entries: iter.into_iter().collect(),
        };
        m.normalise();
        // Collected from an iterator of unknown length, the vector grew by
        // doubling; what it has spare would be held as long as the map.
        // (Shrinking a large allocation remaps it in place: no copy.)
        m.entries.shrink_to_fit();
        m
    }
}

impl<K: Ord, V> Extend<(K, V)> for SortedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.entries.extend(iter);
        self.normalise();
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for SortedMap<K, V> {
    fn from(a: [(K, V); N]) -> Self {
        a.into_iter().collect()
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Ord + Borrow<Q>, Q: Ord + ?Sized, V> std::ops::Index<&Q> for SortedMap<K, V> {
    type Output = V;
    fn index(&self, key: &Q) -> &V {
        self.get(key)
            .expect("no entry for the key in the SortedMap")
    }
}

impl<K: serde::Serialize, V: serde::Serialize> serde::Serialize for SortedMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.entries.iter().map(|(k, v)| (k, v)))
    }
}

/// Read as a `BTreeMap` would be (of equal keys the last wins), then taken
/// over in order without a copy.
impl<'de, K, V> serde::Deserialize<'de> for SortedMap<K, V>
where
    K: serde::Deserialize<'de> + Ord,
    V: serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(std::collections::BTreeMap::<K, V>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// Finds keys of a [`SortedMap`] asked in ascending order (a plan's items,
/// which come in path order) by galloping forward from the last one found;
/// asked out of order, it falls back to a binary search.
pub struct Cursor<'a, K, V> {
    entries: &'a [(K, V)],
    /// Every entry before this index is behind the cursor.
    pos: usize,
}

impl<'a, K: Ord, V> Cursor<'a, K, V> {
    /// The entry of `key`, if any.
    pub fn get<Q>(&mut self, key: &Q) -> Option<(&'a K, &'a V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let entries = self.entries;
        if self.pos > 0 && key <= entries[self.pos - 1].0.borrow() {
            let i = entries
                .binary_search_by(|(k, _)| k.borrow().cmp(key))
                .ok()?;
            return Some(pair(&entries[i]));
        }
        // Gallop ahead (1, 2, 4, … entries), then search the last stride:
        // the next key costs one comparison, one far ahead a few dozen.
        let rest = &entries[self.pos..];
        let less = |(k, _): &(K, V)| k.borrow() < key;
        let mut lo = 0;
        let mut step = 1;
        while lo + step <= rest.len() && less(&rest[lo + step - 1]) {
            lo += step;
            step *= 2;
        }
        let end = (lo + step - 1).min(rest.len());
        self.pos += lo + rest[lo..end].partition_point(less);
        entries
            .get(self.pos)
            .filter(|(k, _)| k.borrow() == key)
            .map(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::SortedMap;

    #[test]
    fn built_from_any_order_the_last_of_equal_keys_wins_as_in_a_btreemap() {
        let pairs = [("b", 1), ("a", 2), ("c", 3), ("a", 4), ("b", 5)];
        let m: SortedMap<&str, i32> = pairs.into_iter().collect();
        let b: std::collections::BTreeMap<&str, i32> = pairs.into_iter().collect();
        assert_eq!(m.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
        let mut m = m;
        m.extend([("0", 9), ("c", 7)]);
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), ["0", "a", "b", "c"]);
        assert_eq!(m["c"], 7);
        assert_eq!(m.insert("bb", 8), None);
        assert_eq!(m.insert("bb", 6), Some(8));
        assert_eq!(m.remove("a"), Some(4));
        assert_eq!(m.get("a"), None);
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn ordered_input_is_taken_as_it_is_without_a_copy() {
        let v: Vec<(u32, u32)> = (0..1000).map(|i| (i, i)).collect();
        let ptr = v.as_ptr();
        let m: SortedMap<u32, u32> = v.into_iter().collect();
        assert_eq!(m.entries.as_ptr(), ptr, "collected in place");
    }

    #[test]
    fn shared_keys_are_the_other_maps_allocations_and_the_map_is_unchanged() {
        let rel = |s: &str| -> crate::Rel { s.into() };
        let mut ours: SortedMap<crate::Rel, u32> = [("a", 1), ("b", 2), ("c/d", 3), ("e", 4)]
            .map(|(k, v)| (rel(k), v))
            .into();
        let theirs: SortedMap<crate::Rel, ()> = [("0", ()), ("b", ()), ("c/d", ()), ("f", ())]
            .map(|(k, v)| (rel(k), v))
            .into();
        let before = ours.clone();
        ours.share_keys(&theirs);
        assert!(ours == before, "same keys and values");
        for (k, _) in ours.iter() {
            let shared = theirs
                .get_key_value(&**k)
                .is_some_and(|(t, _)| std::sync::Arc::ptr_eq(t, k));
            assert_eq!(shared, ["b", "c/d"].contains(&&**k), "{k}");
        }
    }

    #[test]
    fn a_twin_takes_the_shared_keys_by_address_or_by_search() {
        let theirs: SortedMap<crate::Rel, u8> =
            ["a", "b", "c/d"].map(|k| (crate::Rel::from(k), 0)).into();
        let ptr_in = |m: &SortedMap<crate::Rel, u8>, k: &crate::Rel| {
            m.get_key_value(&**k)
                .is_some_and(|(t, _)| std::sync::Arc::ptr_eq(t, k))
        };
        for twin_extra in [None, Some("bb")] {
            let ours: SortedMap<crate::Rel, u32> = ["a", "ab", "c/d", "z"]
                .map(|k| (crate::Rel::from(k), 1))
                .into();
            let mut twin: SortedMap<crate::Rel, char> =
                ours.iter().map(|(k, _)| (k.clone(), 'x')).collect();
            if let Some(x) = twin_extra {
                twin.insert(x.into(), 'y');
            }
            let (mut ours2, twin_before) = (ours.clone(), twin.clone());
            ours2.share_keys_with_twin(&mut twin, &theirs);
            assert!(ours2 == ours && twin == twin_before, "same keys and values");
            for (k, _) in ours2
                .iter()
                .map(|(k, v)| (k, *v))
                .chain(twin.iter().map(|(k, _)| (k, 0)))
            {
                assert_eq!(
                    ptr_in(&theirs, k),
                    ["a", "c/d"].contains(&&**k),
                    "{k} {twin_extra:?}"
                );
            }
        }
    }

    #[test]
    fn a_cursor_finds_keys_in_and_out_of_order() {
        let map: SortedMap<crate::Rel, u32> = [("a", 1), ("b/c", 2), ("d", 3)]
            .map(|(k, v)| (k.into(), v))
            .into();
        let mut c = map.cursor();
        // Keys asked in and out of order, and what the cursor must find.
        let cases = [
            ("a", Some(1)),
            ("a", Some(1)),
            ("b", None),
            ("b/c", Some(2)),
            ("a", Some(1)),
            ("c", None),
            ("b/c", Some(2)),
            ("d", Some(3)),
            ("e", None),
            ("d", Some(3)),
        ];
        for (k, want) in cases {
            assert_eq!(c.get(k).map(|(_, v)| *v), want, "{k}");
        }
    }

    #[test]
    fn a_galloping_cursor_agrees_with_a_search_at_every_stride() {
        // Even numbers are keys; odd ones fall between them.
        let map: SortedMap<u32, u32> = (0..1000u32).map(|i| (2 * i, i)).collect();
        for stride in [1u32, 2, 3, 7, 64, 333, 1999, 5000] {
            for start in [0u32, 1, 5] {
                let mut c = map.cursor();
                let mut k = start;
                while k < 2100 {
                    assert_eq!(c.get(&k), map.get_key_value(&k), "stride {stride}, key {k}");
                    k += stride;
                }
            }
        }
    }
}
