//! The RFC 9162 (Certificate Transparency v2) Merkle tree over the ledger's event hashes: append
//! frontier, roots and inclusion/consistency proofs from stored perfect subtrees, and verification.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an inner node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain separation prefix of leaf hashes (RFC 9162 2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of inner node hashes (RFC 9162 2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// `SHA-256(0x00 || data)`: the hash of a leaf whose content is `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// `SHA-256("")`: the Merkle tree hash of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A perfect aligned subtree: node `(level, index)` covers leaves
/// `[index * 2^level, (index + 1) * 2^level)`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "level {}, index {}", self.level, self.index)
    }
}

/// Why a Merkle computation or verification failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    /// A leaf index that is not below the tree size.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A consistency range whose first size exceeds the second.
    #[error(
        "tree size {first} is larger than tree size {second}: consistency needs first <= second"
    )]
    BadRange { first: u64, second: u64 },
    /// A stored node the computation needs was not supplied by the lookup.
    #[error("Merkle node ({0}) is missing")]
    MissingNode(NodeId),
    /// A proof with the wrong number of hashes for its index / tree sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    ProofLength { expected: usize, got: usize },
    /// The proof does not lead to the claimed root.
    #[error("root mismatch: expected {expected_hex}, the proof gives {computed_hex}")]
    RootMismatch {
        expected_hex: String,
        computed_hex: String,
    },
    /// A frontier encoding that cannot be decoded.
    #[error("corrupt frontier encoding: {0}")]
    CorruptFrontier(String),
    /// The tree already holds `u64::MAX` leaves.
    #[error("the Merkle tree is full: it already holds {size} leaves")]
    TreeFull { size: u64 },
}

/// Read access to stored perfect-subtree nodes.
///
/// Every perfect aligned subtree is stored once as a node `(level, index)` covering leaves
/// `[index * 2^level, (index + 1) * 2^level)`; level 0 holds the leaf hashes. Such a node never
/// changes once complete, so the root and proofs for any tree size are computed from
/// `O(log^2 n)` stored nodes. Storage is async and lives elsewhere, so computing works in two
/// phases: `nodes_for_*` names the nodes needed, the caller fetches them, then `root` /
/// `inclusion_proof` / `consistency_proof` compute with a lookup. Both phases run the same code
/// (the first with a recording lookup), so the list is exactly the set the computation reads.
pub trait NodeLookup {
    /// The hash of node `id`, or `None` when it is not available.
    fn node(&self, id: NodeId) -> Option<Hash>;
}

impl NodeLookup for HashMap<NodeId, Hash> {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.get(&id).copied()
    }
}

impl NodeLookup for BTreeMap<NodeId, Hash> {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.get(&id).copied()
    }
}

impl<T: NodeLookup + ?Sized> NodeLookup for &T {
    fn node(&self, id: NodeId) -> Option<Hash> {
        (**self).node(id)
    }
}

/// The right edge of the tree: the perfect subtrees covering leaves [0, size), largest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<(NodeId, Hash)>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtrees covering leaves [0, size), largest first (one per set bit of `size`).
    pub fn subtrees(&self) -> &[(NodeId, Hash)] {
        &self.subtrees
    }

    /// Appends one leaf (already leaf-hashed) and returns every node that became complete,
    /// including the leaf itself at level 0, in bottom-up order: these are the rows to store.
    ///
    /// # Panics
    ///
    /// When the tree already holds `u64::MAX` leaves (see [`Frontier::try_append`]), which no
    /// ledger can reach.
    pub fn append(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        match self.try_append(leaf) {
            Ok(completed) => completed,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Frontier::append`], failing with [`MerkleError::TreeFull`] instead of panicking when the
    /// tree already holds `u64::MAX` leaves.
    pub fn try_append(&mut self, leaf: Hash) -> Result<Vec<(NodeId, Hash)>, MerkleError> {
        let new_size = self
            .size
            .checked_add(1)
            .ok_or(MerkleError::TreeFull { size: self.size })?;
        let mut id = NodeId {
            level: 0,
            index: self.size,
        };
        let mut hash = leaf;
        let mut completed = vec![(id, hash)];
        while let Some(&(left_id, left_hash)) = self.subtrees.last() {
            if left_id.level != id.level {
                break;
            }
            self.subtrees.pop();
            hash = node_hash(&left_hash, &hash);
            id = NodeId {
                level: id.level + 1,
                index: left_id.index / 2,
            };
            completed.push((id, hash));
        }
        self.subtrees.push((id, hash));
        self.size = new_size;
        Ok(completed)
    }

    /// The Merkle tree hash of the current tree ([`empty_root`] when it is empty).
    pub fn root(&self) -> Hash {
        let mut smallest_first = self.subtrees.iter().rev();
        match smallest_first.next() {
            None => empty_root(),
            Some((_, last)) => smallest_first.fold(*last, |acc, (_, left)| node_hash(left, &acc)),
        }
    }

    /// Compact, stable encoding: the 8-byte big-endian size, then the 32-byte subtree hashes,
    /// largest first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.subtrees.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for (_, hash) in &self.subtrees {
            out.extend_from_slice(hash);
        }
        out
    }

    /// Decodes [`Frontier::to_bytes`], checking that there is exactly one hash per set bit of
    /// the size.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MerkleError> {
        let (size_bytes, rest) = bytes.split_first_chunk::<8>().ok_or_else(|| {
            MerkleError::CorruptFrontier(format!(
                "{} bytes is too short for the 8-byte tree size",
                bytes.len()
            ))
        })?;
        let size = u64::from_be_bytes(*size_bytes);
        let ids = perfect_subtrees(size);
        let expected = ids.len() * 32;
        if rest.len() != expected {
            return Err(MerkleError::CorruptFrontier(format!(
                "a tree of {size} leaves has {} perfect subtrees, so {expected} bytes of hashes \
                 must follow the size, got {}",
                ids.len(),
                rest.len()
            )));
        }
        let subtrees = ids
            .into_iter()
            .zip(rest.chunks_exact(32))
            .map(|(id, chunk)| {
                Hash::try_from(chunk)
                    .map(|hash| (id, hash))
                    .map_err(|_| MerkleError::CorruptFrontier("hash is not 32 bytes".to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { size, subtrees })
    }

    /// Rebuilds the frontier of the tree of `size` leaves from stored nodes; it needs exactly
    /// the nodes of [`nodes_for_root`]`(size)`.
    pub fn from_nodes(size: u64, nodes: &impl NodeLookup) -> Result<Self, MerkleError> {
        let subtrees = perfect_subtrees(size)
            .into_iter()
            .map(|id| {
                nodes
                    .node(id)
                    .map(|hash| (id, hash))
                    .ok_or(MerkleError::MissingNode(id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { size, subtrees })
    }
}

/// The perfect aligned subtrees covering leaves [0, size), largest first.
fn perfect_subtrees(size: u64) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(size.count_ones() as usize);
    let mut offset = 0u64;
    for level in (0..64u8).rev() {
        let width = 1u64 << level;
        if size & width != 0 {
            out.push(NodeId {
                level,
                index: offset >> level,
            });
            offset += width;
        }
    }
    out
}

/// The largest power of two strictly below `n`, for `n >= 2` (RFC 9162's `k`).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves [start, end), taking the stored node for every perfect aligned range and
/// recursing per RFC 9162 2.1.1 otherwise.
fn subtree_hash(start: u64, end: u64, nodes: &impl NodeLookup) -> Result<Hash, MerkleError> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start & (n - 1) == 0 {
        let level = n.trailing_zeros() as u8;
        let id = NodeId {
            level,
            index: start >> level,
        };
        return nodes.node(id).ok_or(MerkleError::MissingNode(id));
    }
    // n >= 2 here: a single leaf is always a perfect aligned range.
    let mid = start + split_point(n);
    Ok(node_hash(
        &subtree_hash(start, mid, nodes)?,
        &subtree_hash(mid, end, nodes)?,
    ))
}

/// The leaf ranges whose MTHs form the audit path of leaf `index` (< `size`), leaf to root
/// (RFC 9162 2.1.3.1).
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut siblings = Vec::new();
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if index < mid {
            siblings.push((mid, end));
            end = mid;
        } else {
            siblings.push((start, mid));
            start = mid;
        }
    }
    siblings.reverse();
    siblings
}

/// The leaf ranges whose MTHs form the consistency proof between sizes `0 < first <= second`
/// (RFC 9162 2.1.4.1, `SUBPROOF` unrolled).
fn consistency_ranges(first: u64, second: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut tail = Vec::new();
    let (mut m, mut start, mut end, mut whole_first_tree) = (first, 0u64, second, true);
    loop {
        let n = end - start;
        if m == n {
            if !whole_first_tree {
                out.push((start, end));
            }
            break;
        }
        let mid = start + split_point(n);
        let k = mid - start;
        if m <= k {
            tail.push((mid, end));
            end = mid;
        } else {
            tail.push((start, mid));
            start = mid;
            m -= k;
            whole_first_tree = false;
        }
    }
    out.extend(tail.into_iter().rev());
    out
}

/// A lookup that answers every request with a dummy hash and records what was asked.
struct Recorder(RefCell<BTreeSet<NodeId>>);

impl NodeLookup for Recorder {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.0.borrow_mut().insert(id);
        Some([0; 32])
    }
}

/// Runs `compute` against a [`Recorder`] and returns the node ids it read, sorted and distinct.
fn record<T>(
    compute: impl FnOnce(&Recorder) -> Result<T, MerkleError>,
) -> Result<Vec<NodeId>, MerkleError> {
    let recorder = Recorder(RefCell::new(BTreeSet::new()));
    compute(&recorder)?;
    Ok(recorder.0.into_inner().into_iter().collect())
}

/// The stored nodes [`root`]`(size, ..)` reads: the frontier of the tree, sorted by (level, index).
pub fn nodes_for_root(size: u64) -> Vec<NodeId> {
    // The recorder answers every lookup, so `root` cannot fail here.
    record(|r| root(size, r)).unwrap_or_default()
}

/// The stored nodes [`inclusion_proof`]`(index, size, ..)` reads, sorted by (level, index).
pub fn nodes_for_inclusion(index: u64, size: u64) -> Result<Vec<NodeId>, MerkleError> {
    record(|r| inclusion_proof(index, size, r))
}

/// The stored nodes [`consistency_proof`]`(first, second, ..)` reads, sorted by (level, index).
pub fn nodes_for_consistency(first: u64, second: u64) -> Result<Vec<NodeId>, MerkleError> {
    record(|r| consistency_proof(first, second, r))
}

/// The Merkle tree hash of the first `size` leaves ([`empty_root`] for 0), from the nodes of
/// [`nodes_for_root`].
pub fn root(size: u64, nodes: &impl NodeLookup) -> Result<Hash, MerkleError> {
    subtree_hash(0, size, nodes)
}

/// RFC 9162 2.1.3.1 audit path for leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    nodes: &impl NodeLookup,
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    inclusion_ranges(index, size)
        .into_iter()
        .map(|(start, end)| subtree_hash(start, end, nodes))
        .collect()
}

/// RFC 9162 2.1.4.1 consistency proof between tree sizes first <= second (empty when first == second or first == 0).
pub fn consistency_proof(
    first: u64,
    second: u64,
    nodes: &impl NodeLookup,
) -> Result<Vec<Hash>, MerkleError> {
    if first > second {
        return Err(MerkleError::BadRange { first, second });
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    consistency_ranges(first, second)
        .into_iter()
        .map(|(start, end)| subtree_hash(start, end, nodes))
        .collect()
}

fn check_root(expected: &Hash, computed: &Hash) -> Result<(), MerkleError> {
    if expected == computed {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch {
            expected_hex: hex::encode(expected),
            computed_hex: hex::encode(computed),
        })
    }
}

fn check_length(expected: usize, proof: &[Hash]) -> Result<(), MerkleError> {
    if proof.len() == expected {
        Ok(())
    } else {
        Err(MerkleError::ProofLength {
            expected,
            got: proof.len(),
        })
    }
}

/// Right-shifts `fn_` and `sn` together until the low bit of `fn_` is set or `fn_` is 0.
fn shift_to_set_bit(fn_: &mut u64, sn: &mut u64) {
    while *fn_ & 1 == 0 && *fn_ != 0 {
        *fn_ >>= 1;
        *sn >>= 1;
    }
}

/// RFC 9162 2.1.3.2 verification.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_ranges(index, size).len();
    check_length(expected, proof)?;
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(MerkleError::ProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            shift_to_set_bit(&mut fn_, &mut sn);
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    check_root(root, &r)
}

/// RFC 9162 2.1.4.2 verification, including the step that shifts the bit-mask when `first` is a power of two.
///
/// `first == second` needs an empty proof and equal roots; `first == 0` needs an empty proof and
/// `first_root == empty_root()` (every tree extends the empty one).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if first > second {
        return Err(MerkleError::BadRange { first, second });
    }
    if first == second {
        check_length(0, proof)?;
        return check_root(second_root, first_root);
    }
    if first == 0 {
        check_length(0, proof)?;
        return check_root(&empty_root(), first_root);
    }
    let expected = consistency_ranges(first, second).len();
    check_length(expected, proof)?;
    let too_short = MerkleError::ProofLength {
        expected,
        got: proof.len(),
    };
    // Step 2: when `first` is a power of two the first tree is a single subtree whose hash is
    // first_root itself, and the proof omits it: the chain starts from first_root.
    let (seed, rest) = if first.is_power_of_two() {
        (first_root, proof)
    } else {
        match proof.split_first() {
            Some((seed, rest)) => (seed, rest),
            None => return Err(too_short),
        }
    };
    // Steps 3 and 4: shift out the low set bits of first - 1 (all of them when first is a
    // power of two).
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Steps 5 and 6.
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if sn == 0 {
            return Err(too_short);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            shift_to_set_bit(&mut fn_, &mut sn);
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(too_short);
    }
    check_root(first_root, &fr)?;
    check_root(second_root, &sr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/vectors/merkle-rfc6962.json"
    );

    #[derive(serde::Deserialize)]
    struct Vectors {
        leaves_hex: Vec<String>,
        empty_root: String,
        roots: BTreeMap<String, String>,
        inclusion: Vec<InclusionVector>,
        consistency: Vec<ConsistencyVector>,
    }

    #[derive(serde::Deserialize)]
    struct InclusionVector {
        leaf_index: u64,
        tree_size: u64,
        path: Vec<String>,
    }

    #[derive(serde::Deserialize)]
    struct ConsistencyVector {
        first: u64,
        second: u64,
        proof: Vec<String>,
    }

    fn h(s: &str) -> Hash {
        hex::decode(s)
            .expect("hex")
            .try_into()
            .expect("32-byte hash")
    }

    fn hs(v: &[String]) -> Vec<Hash> {
        v.iter().map(|s| h(s)).collect()
    }

    /// Appends all leaves, storing every node `append` returns; checks nothing is stored twice.
    fn build(leaves: &[Hash]) -> (Frontier, HashMap<NodeId, Hash>) {
        let mut frontier = Frontier::new();
        let mut nodes = HashMap::new();
        for leaf in leaves {
            for (id, hash) in frontier.append(*leaf) {
                assert!(nodes.insert(id, hash).is_none(), "{id} stored twice");
            }
        }
        (frontier, nodes)
    }

    /// RFC 9162 2.1.1 MTH, straight over the leaf hashes.
    fn naive_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&naive_mth(&leaves[..k]), &naive_mth(&leaves[k..]))
            }
        }
    }

    /// RFC 9162 2.1.3.1 PATH, straight over the leaf hashes.
    fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split_point(n as u64) as usize;
        if m < k {
            let mut p = naive_path(m, &leaves[..k]);
            p.push(naive_mth(&leaves[k..]));
            p
        } else {
            let mut p = naive_path(m - k, &leaves[k..]);
            p.push(naive_mth(&leaves[..k]));
            p
        }
    }

    /// RFC 9162 2.1.4.1 SUBPROOF, straight over the leaf hashes.
    fn naive_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![naive_mth(leaves)]
            };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = naive_subproof(m, &leaves[..k], b);
            p.push(naive_mth(&leaves[k..]));
            p
        } else {
            let mut p = naive_subproof(m - k, &leaves[k..], false);
            p.push(naive_mth(&leaves[..k]));
            p
        }
    }

    /// Wraps a lookup and records the ids read through it.
    struct Spy<'a> {
        inner: &'a HashMap<NodeId, Hash>,
        seen: RefCell<BTreeSet<NodeId>>,
    }

    impl<'a> Spy<'a> {
        fn new(inner: &'a HashMap<NodeId, Hash>) -> Self {
            Self {
                inner,
                seen: RefCell::new(BTreeSet::new()),
            }
        }
        fn take(&self) -> Vec<NodeId> {
            std::mem::take(&mut *self.seen.borrow_mut())
                .into_iter()
                .collect()
        }
    }

    impl NodeLookup for Spy<'_> {
        fn node(&self, id: NodeId) -> Option<Hash> {
            self.seen.borrow_mut().insert(id);
            self.inner.node(id)
        }
    }

    /// Only the listed nodes, to prove that they suffice.
    fn only(nodes: &HashMap<NodeId, Hash>, ids: &[NodeId]) -> BTreeMap<NodeId, Hash> {
        ids.iter()
            .map(|id| (*id, nodes.node(*id).expect("listed node is stored")))
            .collect()
    }

    fn flip(proof: &[Hash], i: usize, byte: usize) -> Vec<Hash> {
        let mut p = proof.to_vec();
        p[i][byte] ^= 0x01;
        p
    }

    fn leaves_for(n: usize, seed: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| {
                let mut data = seed.to_be_bytes().to_vec();
                data.extend_from_slice(&(i as u64).to_be_bytes());
                data.truncate(8 + i % 9);
                leaf_hash(&data)
            })
            .collect()
    }

    /// Every check of one inclusion case: generated == naive, verifies, node list exact and
    /// sufficient.
    fn check_inclusion(leaves: &[Hash], nodes: &HashMap<NodeId, Hash>, index: u64, size: u64) {
        let prefix = &leaves[..size as usize];
        let spy = Spy::new(nodes);
        let proof = inclusion_proof(index, size, &spy).expect("proof");
        assert_eq!(
            proof,
            naive_path(index as usize, prefix),
            "path ({index}, {size})"
        );
        let ids = nodes_for_inclusion(index, size).expect("ids");
        assert_eq!(ids, spy.take(), "ids read for inclusion ({index}, {size})");
        assert_eq!(
            inclusion_proof(index, size, &only(nodes, &ids)).expect("proof from listed nodes"),
            proof
        );
        let root_hash = naive_mth(prefix);
        verify_inclusion(&leaves[index as usize], index, size, &proof, &root_hash)
            .expect("inclusion verifies");
    }

    /// Every check of one consistency case.
    fn check_consistency(leaves: &[Hash], nodes: &HashMap<NodeId, Hash>, first: u64, second: u64) {
        let spy = Spy::new(nodes);
        let proof = consistency_proof(first, second, &spy).expect("proof");
        let expected = if first == 0 || first == second {
            Vec::new()
        } else {
            naive_subproof(first as usize, &leaves[..second as usize], true)
        };
        assert_eq!(proof, expected, "proof ({first}, {second})");
        let ids = nodes_for_consistency(first, second).expect("ids");
        assert_eq!(
            ids,
            spy.take(),
            "ids read for consistency ({first}, {second})"
        );
        assert_eq!(
            consistency_proof(first, second, &only(nodes, &ids)).expect("proof from listed nodes"),
            proof
        );
        let r1 = naive_mth(&leaves[..first as usize]);
        let r2 = naive_mth(&leaves[..second as usize]);
        verify_consistency(first, second, &r1, &r2, &proof).expect("consistency verifies");
    }

    #[test]
    fn reference_vectors() {
        let Ok(text) = std::fs::read_to_string(VECTORS) else {
            crate::shared_data_absent(std::path::Path::new(VECTORS));
            return;
        };
        let v: Vectors = serde_json::from_str(&text).expect("vector file parses");
        let leaves: Vec<Hash> = v
            .leaves_hex
            .iter()
            .map(|d| leaf_hash(&hex::decode(d).expect("hex")))
            .collect();
        assert_eq!(empty_root(), h(&v.empty_root));
        assert_eq!(Frontier::new().root(), h(&v.empty_root));
        let (_, nodes) = build(&leaves);
        assert_eq!(root(0, &nodes).expect("root"), h(&v.empty_root));

        assert!(!v.roots.is_empty());
        let roots: BTreeMap<u64, Hash> = v
            .roots
            .iter()
            .map(|(k, r)| (k.parse().expect("size"), h(r)))
            .collect();
        for (size, want) in &roots {
            let (frontier, _) = build(&leaves[..*size as usize]);
            assert_eq!(frontier.root(), *want, "frontier root at size {size}");
            assert_eq!(
                root(*size, &nodes).expect("root"),
                *want,
                "root at size {size}"
            );
        }
        let root_of = |size: u64| -> Hash {
            if size == 0 {
                empty_root()
            } else {
                roots[&size]
            }
        };

        assert!(!v.inclusion.is_empty());
        for case in &v.inclusion {
            let (index, size) = (case.leaf_index, case.tree_size);
            let leaf = leaves[index as usize];
            let want = hs(&case.path);
            let r = root_of(size);
            assert_eq!(
                inclusion_proof(index, size, &nodes).expect("proof"),
                want,
                "path ({index}, {size})"
            );
            verify_inclusion(&leaf, index, size, &want, &r).expect("reference path verifies");
            // Tampered: every flipped hash.
            for i in 0..want.len() {
                assert!(verify_inclusion(&leaf, index, size, &flip(&want, i, 31), &r).is_err());
            }
            // Wrong leaf, wrong root.
            assert!(verify_inclusion(&leaf_hash(b"x"), index, size, &want, &r).is_err());
            let mut bad_root = r;
            bad_root[0] ^= 0x80;
            assert!(verify_inclusion(&leaf, index, size, &want, &bad_root).is_err());
            // Wrong index: any other position in the same tree.
            for other in (0..size).filter(|o| *o != index) {
                assert!(
                    verify_inclusion(&leaf, other, size, &want, &r).is_err(),
                    "index {other}"
                );
            }
            assert_eq!(
                verify_inclusion(&leaf, size, size, &want, &r),
                Err(MerkleError::IndexOutOfRange { index: size, size })
            );
            // Wrong size: claiming the leaf in another published tree, with that tree's root.
            for other in roots.keys().copied().filter(|s| *s != size && *s > index) {
                assert!(
                    verify_inclusion(&leaf, index, other, &want, &root_of(other)).is_err(),
                    "size {other}"
                );
            }
            // Truncated and extended.
            if let Some((_, short)) = want.split_last() {
                assert!(matches!(
                    verify_inclusion(&leaf, index, size, short, &r),
                    Err(MerkleError::ProofLength { .. })
                ));
            }
            let mut long = want.clone();
            long.push(leaf);
            assert!(matches!(
                verify_inclusion(&leaf, index, size, &long, &r),
                Err(MerkleError::ProofLength { .. })
            ));
        }

        assert!(!v.consistency.is_empty());
        for case in &v.consistency {
            let (first, second) = (case.first, case.second);
            let want = hs(&case.proof);
            let (r1, r2) = (root_of(first), root_of(second));
            assert_eq!(
                consistency_proof(first, second, &nodes).expect("proof"),
                want,
                "proof ({first}, {second})"
            );
            verify_consistency(first, second, &r1, &r2, &want).expect("reference proof verifies");
            for i in 0..want.len() {
                for byte in [0, 17, 31] {
                    assert!(
                        verify_consistency(first, second, &r1, &r2, &flip(&want, i, byte)).is_err()
                    );
                }
            }
            // Swapped or altered roots.
            if r1 != r2 {
                assert!(verify_consistency(first, second, &r2, &r1, &want).is_err());
            }
            let mut bad = r1;
            bad[5] ^= 1;
            assert!(verify_consistency(first, second, &bad, &r2, &want).is_err());
            let mut bad = r2;
            bad[5] ^= 1;
            assert!(verify_consistency(first, second, &r1, &bad, &want).is_err());
            // Wrong sizes, each with the honest root of the claimed size.
            // (An empty proof honestly shows that the empty tree is a prefix, so skip that claim.)
            for f in (0..=second).filter(|f| *f != first && !(*f == 0 && want.is_empty())) {
                let res = verify_consistency(f, second, &root_of(f), &r2, &want);
                assert!(res.is_err(), "first {f} instead of {first}");
            }
            for s in roots
                .keys()
                .copied()
                .filter(|s| *s != second && *s >= first)
            {
                let res = verify_consistency(first, s, &r1, &root_of(s), &want);
                assert!(res.is_err(), "second {s} instead of {second}");
            }
            // Truncated and extended.
            if let Some((_, short)) = want.split_last() {
                assert!(verify_consistency(first, second, &r1, &r2, short).is_err());
            }
            let mut long = want.clone();
            long.push(r1);
            assert!(matches!(
                verify_consistency(first, second, &r1, &r2, &long),
                Err(MerkleError::ProofLength { .. })
            ));
        }
    }

    #[test]
    fn exhaustive_small_trees() {
        let leaves = leaves_for(40, 7);
        let (_, nodes) = build(&leaves);
        for size in 0..=leaves.len() as u64 {
            assert_eq!(
                root(size, &nodes).expect("root"),
                naive_mth(&leaves[..size as usize])
            );
            for index in 0..size {
                check_inclusion(&leaves, &nodes, index, size);
            }
            for first in 0..=size {
                check_consistency(&leaves, &nodes, first, size);
            }
        }
    }

    #[test]
    fn append_returns_completed_nodes_bottom_up() {
        let leaves = leaves_for(4, 1);
        let mut f = Frontier::new();
        assert_eq!(
            f.append(leaves[0]),
            vec![(NodeId { level: 0, index: 0 }, leaves[0])]
        );
        let n01 = node_hash(&leaves[0], &leaves[1]);
        assert_eq!(
            f.append(leaves[1]),
            vec![
                (NodeId { level: 0, index: 1 }, leaves[1]),
                (NodeId { level: 1, index: 0 }, n01)
            ]
        );
        assert_eq!(
            f.append(leaves[2]),
            vec![(NodeId { level: 0, index: 2 }, leaves[2])]
        );
        let n23 = node_hash(&leaves[2], &leaves[3]);
        assert_eq!(
            f.append(leaves[3]),
            vec![
                (NodeId { level: 0, index: 3 }, leaves[3]),
                (NodeId { level: 1, index: 1 }, n23),
                (NodeId { level: 2, index: 0 }, node_hash(&n01, &n23)),
            ]
        );
        assert_eq!(f.size(), 4);
        assert_eq!(
            f.subtrees(),
            &[(NodeId { level: 2, index: 0 }, node_hash(&n01, &n23))]
        );
    }

    #[test]
    fn node_lists_for_small_sizes() {
        let id = |level, index| NodeId { level, index };
        assert!(nodes_for_root(0).is_empty());
        assert_eq!(nodes_for_root(8), vec![id(3, 0)]);
        assert_eq!(nodes_for_root(7), vec![id(0, 6), id(1, 2), id(2, 0)]);
        assert_eq!(
            nodes_for_inclusion(0, 8).expect("ids"),
            vec![id(0, 1), id(1, 1), id(2, 1)]
        );
        assert_eq!(nodes_for_consistency(0, 8).expect("ids"), vec![]);
        assert_eq!(nodes_for_consistency(8, 8).expect("ids"), vec![]);
        assert_eq!(
            nodes_for_consistency(3, 4).expect("ids"),
            vec![id(0, 2), id(0, 3), id(1, 0)]
        );
    }

    #[test]
    fn errors_name_the_bad_input() {
        let (_, nodes) = build(&leaves_for(8, 3));
        let e = inclusion_proof(9, 8, &nodes).expect_err("out of range");
        assert_eq!(e, MerkleError::IndexOutOfRange { index: 9, size: 8 });
        assert_eq!(e.to_string(), "leaf index 9 is outside a tree of 8 leaves");
        assert_eq!(
            nodes_for_inclusion(0, 0),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        );
        let e = consistency_proof(5, 3, &nodes).expect_err("bad range");
        assert_eq!(
            e,
            MerkleError::BadRange {
                first: 5,
                second: 3
            }
        );
        assert!(e
            .to_string()
            .contains("tree size 5 is larger than tree size 3"));
        assert_eq!(
            nodes_for_consistency(5, 3),
            Err(MerkleError::BadRange {
                first: 5,
                second: 3
            })
        );
        assert_eq!(
            verify_consistency(5, 3, &empty_root(), &empty_root(), &[]),
            Err(MerkleError::BadRange {
                first: 5,
                second: 3
            })
        );

        let e = root(5, &HashMap::new()).expect_err("missing");
        assert_eq!(e, MerkleError::MissingNode(NodeId { level: 2, index: 0 }));
        assert_eq!(e.to_string(), "Merkle node (level 2, index 0) is missing");
        let e = root(9, &nodes).expect_err("beyond stored tree");
        assert_eq!(e, MerkleError::MissingNode(NodeId { level: 0, index: 8 }));
        assert_eq!(
            Frontier::from_nodes(9, &nodes),
            Err(MerkleError::MissingNode(NodeId { level: 0, index: 8 }))
        );

        let r = root(8, &nodes).expect("root");
        let mut short = inclusion_proof(0, 8, &nodes).expect("proof");
        short.pop();
        let e = verify_inclusion(&[0; 32], 0, 8, &short, &r).expect_err("short");
        assert_eq!(
            e,
            MerkleError::ProofLength {
                expected: 3,
                got: 2
            }
        );
        assert_eq!(e.to_string(), "proof has 2 hashes, expected 3");

        let e = verify_inclusion(
            &[0; 32],
            0,
            8,
            &inclusion_proof(0, 8, &nodes).expect("p"),
            &r,
        )
        .expect_err("wrong leaf");
        assert!(e
            .to_string()
            .starts_with(&format!("root mismatch: expected {}", hex::encode(r))));
    }

    #[test]
    fn edge_cases_of_consistency_verification() {
        let (_, nodes) = build(&leaves_for(5, 2));
        let r5 = root(5, &nodes).expect("root");
        verify_consistency(0, 5, &empty_root(), &r5, &[]).expect("empty tree is a prefix");
        assert!(verify_consistency(0, 5, &r5, &r5, &[]).is_err());
        assert!(verify_consistency(0, 5, &empty_root(), &r5, &[r5]).is_err());
        verify_consistency(5, 5, &r5, &r5, &[]).expect("same tree");
        verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).expect("empty trees");
        assert!(verify_consistency(5, 5, &r5, &empty_root(), &[]).is_err());
        assert!(verify_consistency(5, 5, &r5, &r5, &[r5]).is_err());
        assert!(verify_consistency(2, 5, &r5, &r5, &[]).is_err());
    }

    #[test]
    fn frontier_bytes_roundtrip_and_rejects_bad_lengths() {
        let leaves = leaves_for(11, 9);
        let (f, nodes) = build(&leaves);
        let bytes = f.to_bytes();
        assert_eq!(bytes.len(), 8 + 3 * 32); // 11 = 0b1011
        assert_eq!(&bytes[..8], &11u64.to_be_bytes());
        assert_eq!(Frontier::from_bytes(&bytes), Ok(f.clone()));
        assert_eq!(Frontier::from_nodes(11, &nodes), Ok(f.clone()));
        assert_eq!(
            Frontier::from_bytes(&Frontier::new().to_bytes()),
            Ok(Frontier::new())
        );

        for len in 0..bytes.len() {
            assert!(
                matches!(
                    Frontier::from_bytes(&bytes[..len]),
                    Err(MerkleError::CorruptFrontier(_))
                ),
                "truncated to {len}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            Frontier::from_bytes(&long),
            Err(MerkleError::CorruptFrontier(_))
        ));
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 32]);
        assert!(matches!(
            Frontier::from_bytes(&long),
            Err(MerkleError::CorruptFrontier(_))
        ));
        // A size whose popcount disagrees with the number of hashes.
        let mut wrong_size = bytes.clone();
        wrong_size[..8].copy_from_slice(&12u64.to_be_bytes());
        let e = Frontier::from_bytes(&wrong_size).expect_err("12 has two set bits");
        assert!(
            e.to_string()
                .contains("a tree of 12 leaves has 2 perfect subtrees"),
            "{e}"
        );
        assert!(Frontier::from_bytes(&[0; 7]).is_err());
    }

    #[test]
    fn full_tree_refuses_to_grow() {
        let mut bytes = u64::MAX.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[7; 64 * 32]);
        let mut f = Frontier::from_bytes(&bytes).expect("u64::MAX leaves");
        assert_eq!(f.subtrees().len(), 64);
        assert_eq!(
            f.subtrees()[0].0,
            NodeId {
                level: 63,
                index: 0
            }
        );
        assert_eq!(
            f.subtrees()[63].0,
            NodeId {
                level: 0,
                index: u64::MAX - 1
            }
        );
        assert_eq!(
            f.try_append([1; 32]),
            Err(MerkleError::TreeFull { size: u64::MAX })
        );
        assert_eq!(f.size(), u64::MAX);
        assert_eq!(nodes_for_root(u64::MAX).len(), 64);
        assert_eq!(
            nodes_for_inclusion(u64::MAX - 1, u64::MAX)
                .expect("ids")
                .len(),
            63
        );
    }

    proptest! {
        #[test]
        fn prop_tree_matches_naive(
            n in 0usize..=300,
            seed in any::<u64>(),
            probes in proptest::collection::vec((any::<u64>(), any::<u64>()), 1..12),
        ) {
            let leaves = leaves_for(n, seed);
            let mut frontier = Frontier::new();
            let mut nodes = HashMap::new();
            for (i, leaf) in leaves.iter().enumerate() {
                let completed = frontier.append(*leaf);
                prop_assert_eq!(completed[0], (NodeId { level: 0, index: i as u64 }, *leaf));
                for pair in completed.windows(2) {
                    prop_assert_eq!(pair[1].0.level, pair[0].0.level + 1);
                }
                for (id, hash) in completed {
                    let start = (id.index << id.level) as usize;
                    let end = start + (1usize << id.level);
                    prop_assert_eq!(hash, naive_mth(&leaves[start..end]), "node {}", id);
                    prop_assert!(nodes.insert(id, hash).is_none());
                }
                let size = frontier.size();
                prop_assert_eq!(size, i as u64 + 1);
                let spy = Spy::new(&nodes);
                prop_assert_eq!(root(size, &spy)?, frontier.root());
                prop_assert_eq!(spy.take(), nodes_for_root(size));
                prop_assert_eq!(Frontier::from_nodes(size, &nodes)?, frontier.clone());
                prop_assert_eq!(Frontier::from_bytes(&frontier.to_bytes())?, frontier.clone());
            }
            prop_assert_eq!(frontier.root(), naive_mth(&leaves));
            prop_assert_eq!(root(n as u64, &nodes)?, naive_mth(&leaves));
            prop_assert_eq!(Frontier::from_bytes(&frontier.to_bytes())?, frontier.clone());

            let n = n as u64;
            for (a, b) in probes {
                let size = a % (n + 1);
                prop_assert_eq!(root(size, &nodes)?, naive_mth(&leaves[..size as usize]));
                if size > 0 {
                    check_inclusion(&leaves, &nodes, b % size, size);
                }
                check_consistency(&leaves, &nodes, b % (size + 1), size);
            }
        }
    }
}
