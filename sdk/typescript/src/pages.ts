/**
 * Pagination: every List/Search RPC of the API takes `page_size` and `page_token` and answers
 * with one repeated field of items plus `next_page_token` (empty on the last page). Instead of
 * a hand-written iterator per RPC, the iterators are derived from the service descriptors:
 * `client.files.iterTrash(req)` (ListTrash), `client.files.iterSearchFiles(req)`
 * (SearchFiles), … exist for every unary method whose request has `page_token` and whose
 * response has `next_page_token` and exactly one repeated field, so a new List RPC gets its
 * iterator without code here. The name is the method's with `list` replaced by `iter`
 * (`listApiKeys` → `iterApiKeys`), else `iter` + the method's name.
 *
 * A server that hands back a page token it gave before would make the loop endless; that is
 * an error (INTERNAL, reason PAGE_TOKEN_REPEATED) instead.
 */
import type {
  DescField,
  DescMessage,
  DescMethod,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type CallOptions, type Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { SDK_ERROR_DOMAIN } from "./errors.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

type UnaryShape = { methodKind: "unary"; input: DescMessage; output: DescMessage };

/** True for a unary method with page_token in and next_page_token out. */
type IsPaged<M> = M extends UnaryShape
  ? MessageShape<M["input"]> extends { pageToken: string }
    ? MessageShape<M["output"]> extends { nextPageToken: string }
      ? true
      : false
    : false
  : false;

/** `listTrash` → `iterTrash`, `searchFiles` → `iterSearchFiles`. */
export type IterName<K extends string> = K extends `list${infer Rest}` ? `iter${Rest}` : `iter${Capitalize<K>}`;

/** The element type of a response's repeated field (the page's items). */
export type PageItem<O> = {
  [K in keyof O]-?: K extends `$${string}` ? never : O[K] extends readonly (infer T)[] ? T : never;
}[keyof O];

/** The iterators of a service: one per List/Search method. */
export type Pagers<S extends DescService> = {
  [K in keyof S["method"] & string as IsPaged<S["method"][K]> extends true ? IterName<K> : never]: S["method"][K] extends UnaryShape
    ? (
        request?: MessageInitShape<S["method"][K]["input"]>,
        options?: CallOptions,
      ) => AsyncGenerator<PageItem<MessageShape<S["method"][K]["output"]>>, void, undefined>
    : never;
};

/** A service's Connect client plus its page iterators. */
export type ServiceClient<S extends DescService> = Client<S> & Pagers<S>;

/** The iterator name of a method (`ListTrash` → `iterTrash`). */
export function iterName(method: DescMethod): string {
  const name = method.localName;
  return name.startsWith("list") ? `iter${name.slice(4)}` : `iter${name[0].toUpperCase()}${name.slice(1)}`;
}

/** The repeated field holding a paged response's items, or undefined if the method is not paged. */
export function pageItemsField(method: DescMethod): DescField | undefined {
  if (method.methodKind !== "unary") return undefined;
  const token = method.input.fields.find((f) => f.name === "page_token");
  const next = method.output.fields.find((f) => f.name === "next_page_token");
  const lists = method.output.fields.filter((f) => f.fieldKind === "list");
  if (token?.fieldKind !== "scalar" || next?.fieldKind !== "scalar" || lists.length !== 1) return undefined;
  return lists[0];
}

/**
 * Every page of a List/Search call, following next_page_token until it is empty. `call` is a
 * Connect client method (e.g. `client.files.listTrash`); `request` is the first page's
 * request (page_size applies to every page; its page_token, if any, is where to start).
 */
export async function* pages<Req extends { pageToken?: string }, Res extends { nextPageToken: string }>(
  call: (request: Req, options?: CallOptions) => Promise<Res>,
  request: Req,
  options?: CallOptions,
): AsyncGenerator<Res, void, undefined> {
  const seen = new Set<string>();
  let token = request.pageToken ?? "";
  for (;;) {
    const page = await call({ ...request, pageToken: token }, options);
    yield page;
    token = page.nextPageToken;
    if (token === "") return;
    if (seen.has(token)) {
      throw new ConnectError(
        `the server returned page token ${JSON.stringify(token)} twice; stopping instead of looping`,
        Code.Internal,
        undefined,
        [{ desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "PAGE_TOKEN_REPEATED", domain: SDK_ERROR_DOMAIN }) }],
      );
    }
    seen.add(token);
  }
}

/** Adds the page iterators of `service` to its Connect client. */
export function withPagers<S extends DescService>(service: S, client: Client<S>): ServiceClient<S> {
  const methods = client as unknown as Record<string, (req: object, options?: CallOptions) => Promise<Record<string, unknown>>>;
  const pagers: Record<string, unknown> = {};
  for (const method of service.methods) {
    const field = pageItemsField(method);
    if (!field) continue;
    const call = methods[method.localName];
    pagers[iterName(method)] = async function* (request: object = {}, options?: CallOptions) {
      for await (const page of pages(call as never, request as { pageToken?: string }, options)) {
        yield* (page as unknown as Record<string, unknown[]>)[field.localName];
      }
    };
  }
  return Object.assign(client, pagers) as ServiceClient<S>;
}
