// The engine's `EXPLAIN AST` output read back into a tree. The engine parses; this only follows its indentation
// (one space per level) and splits each line into the node's kind and what the engine printed after it.

export interface AstNode {
  /** The node's class as the engine names it (SelectQuery, Function, TableIdentifier, Literal, ...). */
  kind: string;
  /** What follows the kind on its line, without "(children N)": a function's or identifier's name, a literal. */
  text: string;
  children: AstNode[];
  parent: AstNode | undefined;
}

const CHILDREN = /\s*\(children \d+\)\s*$/;

/** Parses EXPLAIN AST text; throws on a shape it does not know (never guesses). */
export function parseExplainAst(out: string): AstNode {
  const root: AstNode = { kind: '<root>', text: '', children: [], parent: undefined };
  const stack: Array<{ depth: number; node: AstNode }> = [{ depth: -1, node: root }];
  for (const line of out.split('\n')) {
    if (line.trim() === '') continue;
    const depth = line.length - line.trimStart().length;
    const body = line.trimStart().replace(CHILDREN, '');
    const space = body.indexOf(' ');
    const kind = space < 0 ? body : body.slice(0, space);
    const text = space < 0 ? '' : body.slice(space + 1).trim();
    while ((stack.at(-1) as { depth: number }).depth >= depth) stack.pop();
    const parent = (stack.at(-1) as { node: AstNode }).node;
    if (depth !== (stack.at(-1) as { depth: number }).depth + 1) {
      throw new Error(`EXPLAIN AST: unexpected indentation at ${JSON.stringify(line)}`);
    }
    const node: AstNode = { kind, text, children: [], parent };
    parent.children.push(node);
    stack.push({ depth, node });
  }
  if (root.children.length !== 1) throw new Error('EXPLAIN AST: expected one statement');
  const top = root.children[0] as AstNode;
  top.parent = undefined;
  return top;
}

/** Every node of the tree, depth first. */
export function* walk(node: AstNode): Generator<AstNode> {
  yield node;
  for (const c of node.children) yield* walk(c);
}

/** A table or identifier name split into its parts; a trailing " (alias x)" is not part of it. */
export function nameParts(text: string): string[] {
  const name = text.replace(/\s+\(alias [^)]*\)\s*$/, '').trim();
  return name.split('.');
}
