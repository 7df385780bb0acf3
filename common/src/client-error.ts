// What both services answer to a request Node's HTTP parser refused before any handler ran (the
// server's 'clientError'): one status and detail per parser error, so every listening port agrees.

/** Null when there is nobody left to answer (the peer reset the connection). */
export function clientErrorAnswer(code: string | undefined): { status: number; detail: string } | null {
  if (code === 'ECONNRESET') return null;
  if (code === 'HPE_HEADER_OVERFLOW')
    return { status: 431, detail: 'request line and headers exceed 16 KiB' };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return { status: 408, detail: 'the request did not arrive in time' };
  return { status: 400, detail: 'the request is not valid HTTP' };
}
