//! `ByPosition`: values by (partition, offset), for the leases of one
//! subscription.
//!
//! The values sit in a slab. A hash map finds a block of 16 consecutive
//! offsets of a partition, and the block holds the slab slot of each. A
//! drain grants, acks and drops leases in nearly the same order, 16 at a
//! time to a block, so one map entry serves 16 lookups in a row while it is
//! in cache. With a map entry per position, the first touch of each lease's
//! entry at its ack missed the cache: that was a tenth of a node's CPU
//! draining with four consumers. A block is in use while one of its
//! positions is, so no more blocks are in use than values are held; freed
//! blocks and slots are kept for reuse (their number is the peak's).

use std::collections::HashMap;

use foldhash::fast::RandomState;

/// (partition, offset).
pub type Position = (u32, u64);

/// log2 of the offsets in a block.
const BLOCK_BITS: u32 = 4;
const BLOCK_LEN: usize = 1 << BLOCK_BITS;
/// A block's slot for an offset that holds nothing.
const EMPTY: u32 = u32::MAX;

#[derive(Debug)]
struct Block {
    /// The slab slot of each offset of the block, or [`EMPTY`].
    slots: [u32; BLOCK_LEN],
    /// How many of `slots` are not empty.
    live: u32,
}

#[derive(Debug)]
pub struct ByPosition<V> {
    /// (partition, offset / 16) → its block.
    block_of: HashMap<(u32, u64), u32, RandomState>,
    blocks: Vec<Block>,
    /// Blocks no longer used, taken again before `blocks` grows.
    free_blocks: Vec<u32>,
    /// Values granted together sit in neighbouring slots: freed ones are
    /// taken again first, most recent first.
    values: Vec<Option<V>>,
    free_values: Vec<u32>,
    len: usize,
}

impl<V> Default for ByPosition<V> {
    fn default() -> Self {
        Self {
            block_of: HashMap::default(),
            blocks: Vec::new(),
            free_blocks: Vec::new(),
            values: Vec::new(),
            free_values: Vec::new(),
            len: 0,
        }
    }
}

/// The key of the block holding `position`, and the offset's index in it.
fn block_key((partition, offset): Position) -> ((u32, u64), usize) {
    ((partition, offset >> BLOCK_BITS), (offset & (BLOCK_LEN as u64 - 1)) as usize)
}

impl<V> ByPosition<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn contains_key(&self, position: &Position) -> bool {
        self.slot(position).is_some()
    }

    pub fn get(&self, position: &Position) -> Option<&V> {
        self.values[self.slot(position)? as usize].as_ref()
    }

    pub fn get_mut(&mut self, position: &Position) -> Option<&mut V> {
        let slot = self.slot(position)?;
        self.values[slot as usize].as_mut()
    }

    /// Puts `value` at `position`; returns the value it replaced.
    pub fn insert(&mut self, position: Position, value: V) -> Option<V> {
        let (key, index) = block_key(position);
        let block = match self.block_of.get(&key) {
            Some(&block) => block,
            None => {
                let block = self.new_block();
                self.block_of.insert(key, block);
                block
            }
        };
        let slot = self.blocks[block as usize].slots[index];
        if slot != EMPTY {
            return self.values[slot as usize].replace(value);
        }
        let slot = self.new_value(value);
        let block = &mut self.blocks[block as usize];
        block.slots[index] = slot;
        block.live += 1;
        self.len += 1;
        None
    }

    pub fn remove(&mut self, position: &Position) -> Option<V> {
        let (key, index) = block_key(*position);
        let &number = self.block_of.get(&key)?;
        let block = &mut self.blocks[number as usize];
        let slot = std::mem::replace(&mut block.slots[index], EMPTY);
        if slot == EMPTY {
            return None;
        }
        block.live -= 1;
        if block.live == 0 {
            self.block_of.remove(&key);
            self.free_blocks.push(number);
        }
        self.free_values.push(slot);
        self.len -= 1;
        self.values[slot as usize].take()
    }

    /// Every position and its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Position, &V)> {
        self.block_of.iter().flat_map(move |(&(partition, high), &block)| {
            let slots = self.blocks[block as usize].slots.iter().enumerate();
            slots.filter_map(move |(index, &slot)| {
                let position = (partition, (high << BLOCK_BITS) | index as u64);
                Some((position, self.values.get(slot as usize)?.as_ref()?))
            })
        })
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, value)| value)
    }

    pub fn keys(&self) -> impl Iterator<Item = Position> + '_ {
        self.iter().map(|(position, _)| position)
    }

    fn slot(&self, position: &Position) -> Option<u32> {
        let (key, index) = block_key(*position);
        let slot = self.blocks[*self.block_of.get(&key)? as usize].slots[index];
        (slot != EMPTY).then_some(slot)
    }

    fn new_block(&mut self) -> u32 {
        if let Some(block) = self.free_blocks.pop() {
            return block;
        }
        self.blocks.push(Block { slots: [EMPTY; BLOCK_LEN], live: 0 });
        u32::try_from(self.blocks.len() - 1).expect("leases are bounded far below 2^32")
    }

    fn new_value(&mut self, value: V) -> u32 {
        if let Some(slot) = self.free_values.pop() {
            self.values[slot as usize] = Some(value);
            return slot;
        }
        self.values.push(Some(value));
        u32::try_from(self.values.len() - 1).expect("leases are bounded far below 2^32")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Position, u64),
        Remove(Position),
        Change(Position, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Offsets around block edges, and one far off, in two partitions.
        let position = (0u32..2, prop_oneof![0u64..40, Just(u64::MAX)]);
        prop_oneof![
            3 => (position.clone(), any::<u64>()).prop_map(|(p, v)| Op::Insert(p, v)),
            2 => position.clone().prop_map(Op::Remove),
            1 => (position, any::<u64>()).prop_map(|(p, v)| Op::Change(p, v)),
        ]
    }

    proptest! {
        /// It holds what a map would, and no block outlives its positions.
        #[test]
        fn it_holds_what_a_map_holds(ops in prop::collection::vec(op(), 1..300)) {
            let mut by_position = ByPosition::default();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(position, value) => {
                        prop_assert_eq!(by_position.insert(position, value), model.insert(position, value));
                    }
                    Op::Remove(position) => {
                        prop_assert_eq!(by_position.remove(&position), model.remove(&position));
                    }
                    Op::Change(position, value) => {
                        let changed = by_position.get_mut(&position).map(|v| *v = value);
                        prop_assert_eq!(changed, model.get_mut(&position).map(|v| *v = value));
                    }
                }
                let mut held: Vec<(Position, u64)> = by_position.iter().map(|(p, &v)| (p, v)).collect();
                held.sort_unstable();
                prop_assert_eq!(held, model.iter().map(|(&p, &v)| (p, v)).collect::<Vec<_>>());
                prop_assert_eq!(by_position.len(), model.len());
                for (position, value) in &model {
                    prop_assert_eq!(by_position.get(position), Some(value));
                }
                prop_assert!(!by_position.contains_key(&(2, 0)));
                prop_assert_eq!(by_position.block_of.len(), by_position.blocks.len() - by_position.free_blocks.len());
                prop_assert!(by_position.block_of.len() <= model.len(), "a block per live position at most");
                for &block in by_position.block_of.values() {
                    let block = &by_position.blocks[block as usize];
                    prop_assert!(block.live > 0);
                    prop_assert_eq!(block.live as usize, block.slots.iter().filter(|&&s| s != EMPTY).count());
                }
            }
        }
    }
}
