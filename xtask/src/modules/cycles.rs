//! The loops of a directed graph of module names: Tarjan's strongly connected components
//! (a group of two or more modules that all reach each other is a loop), and inside each
//! group the shortest loop through each of its edges, so every edge that ties the group
//! together is shown in some loop a developer can read and cut.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Each node and the nodes it points to.
pub type Adjacency<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;

/// The strongly connected components with more than one node, each sorted, in name order.
pub fn tangles<'a>(graph: &Adjacency<'a>) -> Vec<Vec<&'a str>> {
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for &node in graph.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    let mut tangles: Vec<Vec<&str>> = tarjan
        .found
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|mut component| {
            component.sort_unstable();
            component
        })
        .collect();
    tangles.sort();
    tangles
}

struct Tarjan<'g, 'a> {
    graph: &'g Adjacency<'a>,
    index: BTreeMap<&'a str, usize>,
    low: BTreeMap<&'a str, usize>,
    stack: Vec<&'a str>,
    on_stack: BTreeSet<&'a str>,
    found: Vec<Vec<&'a str>>,
}

impl<'a> Tarjan<'_, 'a> {
    // Recursive: the graph is a crate's top-level modules, a few dozen at most.
    fn visit(&mut self, node: &'a str) {
        let index = self.index.len();
        self.index.insert(node, index);
        self.low.insert(node, index);
        self.stack.push(node);
        self.on_stack.insert(node);
        for &next in self.graph.get(node).into_iter().flatten() {
            if !self.index.contains_key(next) {
                self.visit(next);
                let low = self.low[node].min(self.low[next]);
                self.low.insert(node, low);
            } else if self.on_stack.contains(next) {
                let low = self.low[node].min(self.index[next]);
                self.low.insert(node, low);
            }
        }
        if self.low[node] == index {
            let mut component = Vec::new();
            while let Some(top) = self.stack.pop() {
                self.on_stack.remove(top);
                component.push(top);
                if top == node {
                    break;
                }
            }
            self.found.push(component);
        }
    }
}

/// The loops of one tangle: for each of its edges `a -> b`, the shortest way back from
/// `b` to `a` inside the tangle, as `[a, b, …]` (the edge back to `a` implied), each
/// rotated to start at its least name and listed once, shortest first.
pub fn loops<'a>(graph: &Adjacency<'a>, tangle: &[&'a str]) -> Vec<Vec<&'a str>> {
    let inside: BTreeSet<&str> = tangle.iter().copied().collect();
    let mut loops = BTreeSet::new();
    for &from in tangle {
        for &to in graph.get(from).into_iter().flatten() {
            if inside.contains(to)
                && let Some(back) = shortest_path(graph, &inside, to, from)
            {
                let mut cycle: Vec<&str> = std::iter::once(from).chain(back).collect();
                cycle.pop(); // `from` again
                let least = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                cycle.rotate_left(least);
                loops.insert((cycle.len(), cycle));
            }
        }
    }
    loops.into_iter().map(|(_, cycle)| cycle).collect()
}

/// The shortest path `from … to` through `inside` (breadth-first; ties go to the names
/// that sort first, so the output is stable).
fn shortest_path<'a>(
    graph: &Adjacency<'a>,
    inside: &BTreeSet<&'a str>,
    from: &'a str,
    to: &'a str,
) -> Option<Vec<&'a str>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to];
            while let Some(&previous) = path.last().and_then(|n| came_from.get(n)) {
                path.push(previous);
            }
            path.reverse();
            return Some(path);
        }
        for &next in graph.get(node).into_iter().flatten() {
            if inside.contains(next) && next != from && !came_from.contains_key(next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph<'a>(edges: &[(&'a str, &'a str)]) -> Adjacency<'a> {
        let mut graph = Adjacency::new();
        for &(from, to) in edges {
            graph.entry(from).or_default().insert(to);
            graph.entry(to).or_default();
        }
        graph
    }

    #[test]
    fn finds_each_tangle_and_no_acyclic_part() {
        let g = graph(&[
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("c", "d"),
            ("d", "e"),
            ("e", "d"),
            ("f", "a"),
        ]);
        assert_eq!(tangles(&g), [vec!["a", "b", "c"], vec!["d", "e"]]);
        assert!(tangles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    }

    #[test]
    fn lists_the_shortest_loop_through_every_edge_once() {
        // a <-> b, and a -> c -> b: the edges a->b and b->a make one loop, a->c another.
        let g = graph(&[("a", "b"), ("b", "a"), ("a", "c"), ("c", "b")]);
        let tangle = &tangles(&g)[0];
        assert_eq!(loops(&g, tangle), [vec!["a", "b"], vec!["a", "c", "b"]]);
    }
}
