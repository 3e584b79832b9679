// Moddable's ECMA-419 HTTP client (examples/io/tcp/httpclient), as the updater uses it.
declare module "embedded:network/http/client" {
  export interface HTTPRequest {
    read(count?: number): ArrayBuffer | undefined;
  }
  export interface RequestOptions {
    method?: string;
    path?: string;
    headers?: Map<string, string | number>;
    onHeaders?: (this: HTTPRequest, status: number, headers: Map<string, string>, statusText: string) => void;
    onReadable?: (this: HTTPRequest, count: number) => void;
    onDone?: (this: HTTPRequest, error?: Error) => void;
  }
  export interface Options {
    host: string;
    port?: number;
    dns: { io: unknown; [key: string]: unknown };
    socket: { io: unknown; [key: string]: unknown };
    onError?: (error?: Error) => void;
  }
  export default class HTTPClient {
    constructor(options: Options);
    request(options: RequestOptions): HTTPRequest;
    close(): void;
  }
}
