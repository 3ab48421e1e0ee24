import type { Config } from "./config";

/** Query parameters of a download; empty or null ones are left out. */
export type DownloadParams = Record<string, string | null | undefined>;

/** A file from the REST API beside the GraphQL endpoint (`path`: a CSV export such as
 * `/api/v1/me/usage.csv`, a receipt's or statement's pdfUrl / jsonUrl), saved as
 * `filename`. Fetched with the bearer token, since a plain link could not carry it. */
export async function download(config: Config, path: string, filename: string, params: DownloadParams = {}): Promise<void> {
  const url = new URL(path, config.apiUrl);
  for (const [name, value] of Object.entries(params)) if (value) url.searchParams.set(name, value);
  const response = await fetch(url, { headers: config.token ? { authorization: `Bearer ${config.token}` } : {} });
  if (!response.ok) {
    const body = (await response.json().catch(() => null)) as { message?: string } | null;
    throw new Error(body?.message ?? `${response.status} ${response.statusText}`);
  }
  const href = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = href;
  link.download = filename;
  link.click();
  // Later, not at once: the download reads the blob after click() returns.
  window.setTimeout(() => URL.revokeObjectURL(href), 10_000);
}
