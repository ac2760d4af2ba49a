import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { makeTempDir, removeTempDir } from './temp-dir.js';

/**
 * Command-line clients nobody here wrote, run against the local servers: Debian's awscli
 * (`/usr/bin/aws`, installed by `.ci/clients.sh`), Google's `gcloud` (google-cloud-cli) and
 * Python 3. Tests that need one skip, saying so, when it is not installed.
 */
export interface ClientResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

const AWS = '/usr/bin/aws';
const GCLOUD_CANDIDATES = ['/usr/bin/gcloud', '/usr/lib/google-cloud-sdk/bin/gcloud'];
const PYTHON_CANDIDATES = ['/usr/bin/python3', '/usr/local/bin/python3'];

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export const awsCliPath: string | undefined = executable(AWS) ? AWS : undefined;
export const gcloudPath: string | undefined = GCLOUD_CANDIDATES.find(executable);
export const python3Path: string | undefined = PYTHON_CANDIDATES.find(executable);

export async function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: Buffer,
): Promise<ClientResult> {
  const child = spawn(file, args, { env, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  if (input) child.stdin!.end(input);
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout: Buffer.concat(out), stderr };
}

/** `aws --endpoint-url ENDPOINT ARGS` with s3rver's credentials and no config or profile. */
export function awsCli(endpoint: string, args: string[]): Promise<ClientResult> {
  if (!awsCliPath) throw new Error(`${AWS} is not installed`);
  return run(awsCliPath, ['--endpoint-url', endpoint, ...args], {
    PATH: '/usr/bin:/bin',
    HOME: tmpdir(),
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  });
}

/**
 * `gcloud` pointed at a GCS emulator: the storage API overridden, no credentials, a throwaway
 * configuration folder (so nothing of the user's is read or written), no prompts, no update
 * checks, no usage reports.
 */
export async function gcloudFor(emulatorUrl: string): Promise<{
  gcloud: (args: string[], input?: Buffer) => Promise<ClientResult>;
  close: () => Promise<void>;
}> {
  if (!gcloudPath) throw new Error('gcloud is not installed');
  const config = await makeTempDir('gcloud');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: config,
    CLOUDSDK_CONFIG: config,
    CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: `${emulatorUrl}/`,
    CLOUDSDK_AUTH_DISABLE_CREDENTIALS: 'true',
    CLOUDSDK_CORE_PROJECT: 'test',
    CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
    CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
  };
  return {
    gcloud: (args, input) => run(gcloudPath!, args, env, input),
    close: () => removeTempDir(config),
  };
}
