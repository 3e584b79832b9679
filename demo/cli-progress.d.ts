// The slice of cli-progress 3.12 the demo uses (the package ships no types).
declare module "cli-progress" {
  export interface Options {
    format?: string;
    hideCursor?: boolean;
    clearOnComplete?: boolean;
    stopOnComplete?: boolean;
    barsize?: number;
  }
  export interface Preset {
    readonly barCompleteChar: string;
    readonly barIncompleteChar: string;
  }
  export class SingleBar {
    update(value: number, payload?: Record<string, unknown>): void;
  }
  export class MultiBar {
    constructor(options: Options, preset?: Preset);
    create(total: number, start: number, payload?: Record<string, unknown>): SingleBar;
    log(text: string): void;
    stop(): void;
  }
  export const Presets: { readonly shades_classic: Preset; readonly rect: Preset };
  const cliProgress: { MultiBar: typeof MultiBar; Presets: typeof Presets };
  export default cliProgress;
}
