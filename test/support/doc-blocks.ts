// Reads the command blocks of a Markdown page and checks `espguard` command lines against the real
// command tree, so a page cannot name a verb or an option that does not exist.
import type { Command } from "commander";
import { program } from "../../cli/main.ts";

export interface DocBlock {
  /** The fence's info string: "sh" for blocks a test runs, "sh board" for hardware-only ones. */
  info: string;
  body: string;
  /** 1-based line of the opening fence, for messages. */
  line: number;
  /** From a first line `# step: <name>`. */
  step?: string;
}

export function docBlocks(markdown: string): DocBlock[] {
  const blocks: DocBlock[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]!);
    if (open === null) continue;
    const end = lines.indexOf("```", i + 1);
    if (end < 0) throw new Error(`line ${i + 1}: unclosed code fence`);
    const body = lines.slice(i + 1, end).join("\n") + "\n";
    const step = /^# step: (\S+)\n/.exec(body)?.[1];
    blocks.push({ info: open[1]!.trim(), body, line: i + 1, ...(step === undefined ? {} : { step }) });
    i = end;
  }
  return blocks;
}

const OPERATORS = ["&&", "||", ";", "|"];

/**
 * The simple commands of a POSIX shell script, as words, with `$NAME`/`${NAME}` expanded from `env`
 * (an unset name is an error: a page's example values must all be known). Supports what command
 * lines in docs use: quotes, backslash escapes, line continuations, comments and the operators
 * `&&`, `||`, `;`, `|`. Command substitution and redirections are refused rather than guessed at.
 */
export function simpleCommands(script: string, env: Readonly<Record<string, string>>): string[][] {
  const commands: string[][] = [[]];
  let word: string | undefined;
  const endWord = (): void => {
    if (word !== undefined) commands[commands.length - 1]!.push(word);
    word = undefined;
  };
  const endCommand = (): void => {
    endWord();
    if (commands[commands.length - 1]!.length > 0) commands.push([]);
  };
  const expand = (text: string, at: number): [string, number] => {
    const m = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/.exec(text.slice(at));
    if (m === null) throw new Error(`unsupported $ expansion at ${JSON.stringify(text.slice(at, at + 20))}`);
    const name = (m[1] ?? m[2])!;
    const value = env[name];
    if (value === undefined) throw new Error(`$${name} has no example value`);
    return [value, at + m[0].length];
  };
  let i = 0;
  while (i < script.length) {
    const c = script[i]!;
    if (c === "\\" && script[i + 1] === "\n") {
      i += 2;
    } else if (c === "\n") {
      endCommand();
      i++;
    } else if (c === " " || c === "\t") {
      endWord();
      i++;
    } else if (c === "#" && word === undefined) {
      while (i < script.length && script[i] !== "\n") i++;
    } else if (c === "'") {
      const close = script.indexOf("'", i + 1);
      if (close < 0) throw new Error("unclosed '");
      word = (word ?? "") + script.slice(i + 1, close);
      i = close + 1;
    } else if (c === '"') {
      word ??= "";
      i++;
      while (script[i] !== '"') {
        if (i >= script.length) throw new Error('unclosed "');
        if (script[i] === "\\" && '"\\$`'.includes(script[i + 1]!)) {
          word += script[i + 1];
          i += 2;
        } else if (script[i] === "$") {
          if (script[i + 1] === "(") throw new Error("command substitution is not supported");
          const [value, next] = expand(script, i);
          word += value;
          i = next;
        } else if (script[i] === "`") {
          throw new Error("command substitution is not supported");
        } else {
          word += script[i++];
        }
      }
      i++;
    } else if (c === "$") {
      if (script[i + 1] === "(") throw new Error("command substitution is not supported");
      const [value, next] = expand(script, i);
      word = (word ?? "") + value;
      i = next;
    } else if (c === "\\") {
      word = (word ?? "") + (script[i + 1] ?? "");
      i += 2;
    } else if (c === "<" || c === ">" || c === "`" || c === "(" || c === ")") {
      throw new Error(`unsupported shell syntax ${JSON.stringify(c)}`);
    } else {
      const op = word === undefined ? OPERATORS.find((o) => script.startsWith(o, i)) : undefined;
      if (op !== undefined) {
        endCommand();
        i += op.length;
      } else {
        word = (word ?? "") + c;
        i++;
      }
    }
  }
  endCommand();
  return commands.filter((command) => command.length > 0);
}

/** The argument lists of every `espguard` command in a script, after any leading `NAME=value` assignments. */
export function espguardCommands(script: string, env: Readonly<Record<string, string>>): string[][] {
  return simpleCommands(script, env).flatMap((words) => {
    const start = words.findIndex((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w));
    return start >= 0 && words[start] === "espguard" ? [words.slice(start + 1)] : [];
  });
}

export type ParseResult = { ok: true; command: string; options: Record<string, unknown> } | { ok: false; error: string };

/**
 * Parses `args` with the real espguard command tree and runs nothing: every leaf command's action is
 * replaced by one that records what it was given. Commander then rejects an unknown verb or option,
 * a missing required option or argument, an excess argument and a value an option's own parser
 * refuses; a line that stops at a verb group (e.g. `espguard certs`) is refused too.
 */
export async function parseEspguard(args: readonly string[]): Promise<ParseResult> {
  const root = await program(args);
  let reached: { command: string; options: Record<string, unknown> } | undefined;
  const silence = (command: Command, path: string): void => {
    command.exitOverride();
    command.configureOutput({ writeOut: () => {}, writeErr: () => {} });
    if (command.commands.length === 0) {
      command.action(() => {
        reached = { command: path, options: command.opts() };
      });
    }
    for (const sub of command.commands) silence(sub, `${path} ${sub.name()}`.trim());
  };
  silence(root, "");
  try {
    await root.parseAsync([...args], { from: "user" });
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
  return reached === undefined ? { ok: false, error: "no command ran (a verb group without its verb?)" } : { ok: true, ...reached };
}
