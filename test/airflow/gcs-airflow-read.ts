import type { Storage } from '@google-cloud/storage';
import { pythonUtf8Decode } from '../support/python-text.js';

/**
 * Airflow's GCS task handler's read, replayed with the GCS SDK. From apache/airflow
 * `providers/google/src/airflow/providers/google/cloud/log/gcs_task_handler.py` (main, 2025;
 * `GCSRemoteLogIO.read`, Airflow 3.x) and `airflow/providers/google/cloud/log/gcs_task_handler.py`
 * (Airflow 2.6–2.10's provider; `GCSTaskHandler._read_remote_logs`):
 *
 *     blobs = list(self.client.list_blobs(bucket_or_name=bucket, prefix=prefix))
 *     uris = [f"gs://{bucket}/{b.name}" for b in blobs]
 *     try:
 *         for key in sorted(uris):
 *             remote_log = storage.Blob.from_string(key, self.client).download_as_bytes().decode()
 *             if remote_log:
 *                 logs.append(remote_log)
 *     except Exception as e:
 *         messages.append(f"Unable to read remote log {e}")   # 2.x only; 3.x says nothing
 *
 * `decode()` is strict UTF-8, and the first object that fails ends the whole read.
 */
export interface AirflowGcsRead {
  /** `gs://bucket/name` of every object listed, sorted. */
  uris: string[];
  /** The texts read before any failure; null when nothing was listed (Airflow falls back). */
  logs: string[] | null;
  /** Airflow 2.x's message when a read failed (`Unable to read remote log …`); 3.x drops it. */
  failure?: string;
}

export async function airflowGcsRead(
  storage: Storage,
  bucket: string,
  remoteBase: string,
  relativePath: string,
): Promise<AirflowGcsRead> {
  const [files] = await storage
    .bucket(bucket)
    .getFiles({ prefix: `${remoteBase}/${relativePath}` });
  if (files.length === 0) return { uris: [], logs: null };
  const uris = files.map((f) => `gs://${bucket}/${f.name}`).sort();
  const logs: string[] = [];
  try {
    for (const uri of uris) {
      const name = uri.slice(`gs://${bucket}/`.length);
      const [bytes] = await storage.bucket(bucket).file(name).download();
      const text = pythonUtf8Decode(bytes);
      if (text) logs.push(text);
    }
  } catch (err) {
    return { uris, logs, failure: `Unable to read remote log ${(err as Error).message}` };
  }
  return { uris, logs };
}
