// Inserts a time-budget check at the head of every loop body and function body of a script, so a runaway stored procedure can be stopped without a watchdog thread.
import { createRequire } from "node:module";

// @babel/parser comes with the query engine's @babel/traverse; only positions are used, the source is edited as text.
const fromEngine = createRequire(createRequire(import.meta.url).resolve("@zeit/cosmosdb-query"));
const { parse } = fromEngine("@babel/parser") as { parse(source: string, options: object): Node };

type Node = { type: string; start: number; end: number; [k: string]: unknown };
type Insert = { at: number; text: string; closing: boolean; depth: number };

const LOOPS = new Set(["ForStatement", "ForInStatement", "ForOfStatement", "WhileStatement", "DoWhileStatement"]);
const FUNCTIONS = new Set(["FunctionDeclaration", "FunctionExpression", "ArrowFunctionExpression", "ObjectMethod", "ClassMethod", "ClassPrivateMethod"]);

const isNode = (v: unknown): v is Node => v !== null && typeof v === "object" && typeof (v as Node).type === "string";

/**
 * Returns `source` with `check` called first in every loop iteration and every function call. Once the budget is
 * spent the check throws on every call, so even a script that catches the error unwinds: every loop and call on the
 * way out throws again.
 */
export function instrument(source: string, check: string): string {
  const ast = parse(source, { sourceType: "script", allowReturnOutsideFunction: false });
  const inserts: Insert[] = [];
  const call = `${check}();`;
  const walk = (node: Node, depth: number) => {
    if (LOOPS.has(node.type)) {
      const body = node.body as Node;
      if (body.type === "BlockStatement") inserts.push({ at: body.start + 1, text: call, closing: false, depth });
      else {
        inserts.push({ at: body.start, text: `{${call}`, closing: false, depth });
        inserts.push({ at: body.end, text: "}", closing: true, depth });
      }
    } else if (FUNCTIONS.has(node.type)) {
      const body = node.body as Node;
      if (body.type === "BlockStatement") {
        const directives = body.directives as Node[];
        const at = directives.length ? directives[directives.length - 1]!.end : body.start + 1;
        inserts.push({ at, text: call, closing: false, depth });
      } else {
        // An arrow's expression body, possibly parenthesised: the arrow ends where its body (and closing paren) ends.
        const extra = body.extra as { parenthesized?: boolean; parenStart?: number } | undefined;
        inserts.push({ at: extra?.parenthesized ? extra.parenStart! : body.start, text: `{${call}return (`, closing: false, depth });
        inserts.push({ at: node.end, text: ");}", closing: true, depth });
      }
    }
    for (const key of Object.keys(node)) {
      if (key === "loc" || key === "extra" || key.endsWith("Comments")) continue;
      const v = node[key];
      if (Array.isArray(v)) for (const x of v) isNode(x) && walk(x, depth + 1);
      else if (isNode(v)) walk(v, depth + 1);
    }
  };
  walk(ast, 0);
  // At one position: closings before openings; inner closings first, outer openings first.
  inserts.sort((a, b) => a.at - b.at || (a.closing === b.closing ? (a.closing ? b.depth - a.depth : a.depth - b.depth) : a.closing ? -1 : 1));
  let out = "";
  let last = 0;
  for (const i of inserts) {
    out += source.slice(last, i.at) + i.text;
    last = i.at;
  }
  return out + source.slice(last);
}
