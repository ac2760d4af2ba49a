import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { type Middleware, S3Error } from './s3rver-module.js';

/** `/bucket/key` with each segment percent-decoded. */
export function decodePath(raw: string): string {
  return raw.split('/').map(decodeURIComponent).join('/');
}

/**
 * ListMultipartUploads (`GET /bucket?uploads`), ListParts (`GET /bucket/key?uploadId`) and
 * AbortMultipartUpload (`DELETE /bucket/key?uploadId`), per
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html,
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListParts.html and
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html (one page each:
 * the tests hold few uploads and parts). No signature check: s3rver's own runs in its router.
 */
export function multipartApis(bucket: string, uploadsDir: string): Middleware {
  const keyOf = async (uploadId: string) =>
    readFile(path.join(uploadsDir, uploadId, 'key'), 'utf8').catch(() => undefined);
  const noSuchUpload = () =>
    new S3Error(
      'NoSuchUpload',
      'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    );
  return async (ctx, next) => {
    const [, b, ...rest] = decodePath(ctx.path).split('/');
    const key = rest.join('/');
    if (b !== bucket) return next();
    const uploadId = ctx.query.uploadId;
    if (ctx.method === 'GET' && key === '' && 'uploads' in ctx.query) {
      const prefix = ctx.query.prefix ?? '';
      const uploads: { Key: string; UploadId: string; Initiated: string }[] = [];
      for (const id of await readdir(uploadsDir).catch(() => [] as string[])) {
        const k = await keyOf(id);
        if (k === undefined || !k.startsWith(prefix)) continue;
        const { birthtime } = await stat(path.join(uploadsDir, id));
        uploads.push({ Key: k, UploadId: id, Initiated: birthtime.toISOString() });
      }
      uploads.sort((x, y) => (x.Key < y.Key ? -1 : x.Key > y.Key ? 1 : 0));
      ctx.body = {
        ListMultipartUploadsResult: {
          '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
          Bucket: bucket,
          Prefix: prefix,
          MaxUploads: 1000,
          IsTruncated: false,
          Upload: uploads,
        },
      };
      return;
    }
    if (key === '' || uploadId === undefined || (ctx.method !== 'GET' && ctx.method !== 'DELETE')) {
      return next();
    }
    if ((await keyOf(uploadId)) !== key) throw noSuchUpload();
    const dir = path.join(uploadsDir, uploadId);
    if (ctx.method === 'DELETE') {
      await rm(dir, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    const parts = [];
    for (const name of await readdir(dir)) {
      if (!/^[0-9]+$/.test(name)) continue;
      const file = path.join(dir, name);
      // s3rver writes a part's MD5 once the part is whole: a part still arriving has none yet.
      const md5 = await readFile(`${file}.md5`, 'utf8').catch(() => undefined);
      if (md5 === undefined) continue;
      const info = await stat(file);
      parts.push({
        PartNumber: Number(name),
        LastModified: info.mtime.toISOString(),
        ETag: `"${md5}"`,
        Size: info.size,
      });
    }
    parts.sort((x, y) => x.PartNumber - y.PartNumber);
    ctx.body = {
      ListPartsResult: {
        '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MaxParts: 1000,
        IsTruncated: false,
        Part: parts,
      },
    };
  };
}
