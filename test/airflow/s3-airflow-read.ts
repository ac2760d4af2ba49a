import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { pythonReadText, pythonUtf8Decode } from '../support/python-text.js';
import type { S3rverFixture } from '../support/s3rver.js';

/**
 * Airflow's S3 task handler, replayed with the AWS SDK: what it reads for an attempt and what it
 * writes. From apache/airflow:
 * - `providers/amazon/src/airflow/providers/amazon/aws/log/s3_task_handler.py` (main, 2025;
 *   `S3RemoteLogIO.read`, used by Airflow 3.x and by 2.10 through `_read_remote_logs`), the same
 *   in `providers/src/…` (Airflow 2.10's provider): `list_keys(bucket, prefix=<key>)`, keys
 *   sorted as `s3://bucket/key`, then `s3_read(key, return_error=True)` of each.
 * - `S3Hook.list_keys` (`…/aws/hooks/s3.py`): ListObjectsV2 pages with that Prefix, no delimiter
 *   (s3rver's `listKeys`).
 * - `S3Hook.read_key`: `obj.get()["Body"].read().decode("utf-8")`, strict. `s3_read` turns any
 *   exception into the text `Could not read logs from s3://… with error: …`, shown in place of
 *   that object's log.
 * - Writes (`S3RemoteLogIO.upload` / `write`, 2.x `close` / `s3_write`): `log = read_text()` of
 *   the local file, and if the key exists, `f"{old_log}\n{log}" if old_log else log` (2.0–2.5:
 *   `"\n".join([old_log, log])`), uploaded with `load_string` (UTF-8).
 */
export interface AirflowS3Read {
  /** `s3://bucket/key` of every object listed, sorted (Airflow 3 shows them as the sources). */
  uris: string[];
  /** One entry per key, in that order: its text, or the error text `s3_read` returns. */
  logs: string[] | null;
}

/** Airflow's read of the log at `relativePath` below `remoteBase` in s3rver's bucket. */
export async function airflowS3Read(
  s3: Pick<S3rverFixture, 'bucket' | 'listKeys'>,
  client: S3Client,
  remoteBase: string,
  relativePath: string,
): Promise<AirflowS3Read> {
  const listed = await s3.listKeys(`${remoteBase}/${relativePath}`);
  if (listed.length === 0) return { uris: [], logs: null };
  const uris = listed.map((k) => `s3://${s3.bucket}/${k}`).sort();
  const logs: string[] = [];
  for (const uri of uris) {
    const key = uri.slice(`s3://${s3.bucket}/`.length);
    try {
      const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
      logs.push(pythonUtf8Decode(await res.Body!.transformToByteArray()));
    } catch (err) {
      logs.push(`Could not read logs from ${uri} with error: ${(err as Error).message}`);
    }
  }
  return { uris, logs };
}

/**
 * The bytes Airflow's S3 (and GCS) handler stores at the key when a task's log is uploaded:
 * the local file as `read_text()` gives it (strict UTF-8, `\r\n` and `\r` become `\n`), after
 * the text already stored there and a `\n`, encoded as UTF-8.
 */
export function airflowUploadBody(localFile: Uint8Array, stored?: Uint8Array): Buffer {
  const log = pythonReadText(localFile);
  const old = stored === undefined ? '' : pythonUtf8Decode(stored);
  return Buffer.from(old ? `${old}\n${log}` : log, 'utf8');
}

/** An S3 client on s3rver with its fixed credentials, as Airflow's hook would use it. */
export function airflowS3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
