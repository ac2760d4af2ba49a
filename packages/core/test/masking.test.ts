import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadConfig,
  maskUrlPasswords,
  SecretMasker,
  urlPasswords,
} from '../src/index.js';

const masked = (masker: SecretMasker, text: string) => masker.mask(text).toString();

describe('SecretMasker.fromEnv, as complete as Airflow', () => {
  for (const name of [
    'MY_APIKEY',
    'SSH_PASSPHRASE',
    'GITHUB_ACCESS_TOKEN',
    'GCP_KEYFILE_DICT',
    'GOOGLE_SERVICE_ACCOUNT',
    'DB_PASSWORD',
  ]) {
    it(`masks the value of ${name} (a name on Airflow's list)`, () => {
      const masker = SecretMasker.fromEnv({ [name]: 's3cr3t-value' });
      expect(masked(masker, 'value is s3cr3t-value!')).toBe('value is ***!');
    });
  }

  it('masks names added by core.sensitive_names', () => {
    const masker = SecretMasker.fromEnv({ MY_PIN_CODE: '98765' }, ['pin_code']);
    expect(masked(masker, 'pin 98765')).toBe('pin ***');
  });

  it('masks the password inside an AIRFLOW_CONN_* URI, as written and percent-decoded', () => {
    const masker = SecretMasker.fromEnv({
      AIRFLOW_CONN_WAREHOUSE: 'postgres://etl:p%40ss%2Fw0rd@db.internal:5432/dwh',
    });
    expect(masked(masker, 'connecting with p@ss/w0rd or p%40ss%2Fw0rd')).toBe(
      'connecting with *** or ***',
    );
  });

  it('masks a password in any URL of the environment, whatever the variable is called', () => {
    const masker = SecretMasker.fromEnv({ DATABASE_URL: 'mysql://app:hunter2hunter2@mysql/app' });
    expect(masked(masker, 'auth failed for hunter2hunter2')).toBe('auth failed for ***');
  });

  it('masks the sensitive fields of a JSON connection, its extra included', () => {
    const masker = SecretMasker.fromEnv({
      AIRFLOW_CONN_API: JSON.stringify({
        conn_type: 'http',
        login: 'bot',
        password: 'json-password-1',
        extra: JSON.stringify({ api_key: 'extra-api-key-2', region: 'eu-west-1' }),
      }),
    });
    expect(masked(masker, 'json-password-1 extra-api-key-2 eu-west-1 bot')).toBe(
      '*** *** eu-west-1 bot',
    );
  });
});

describe('passwords in messages', () => {
  it('masks a URL password holding @ and / whole', () => {
    expect(maskUrlPasswords('cannot connect to postgres://tasklog:p@ss/w:rd@db:5432/x')).toBe(
      'cannot connect to postgres://tasklog:***@db:5432/x',
    );
    expect(urlPasswords('postgres://tasklog:p@ss/w:rd@db:5432/x')).toContain('p@ss/w:rd');
  });

  it('leaves URLs without a password alone', () => {
    for (const text of ['s3://bucket/a@b', 'https://example.com/x', 'sqlite:///var/db']) {
      expect(maskUrlPasswords(text)).toBe(text);
    }
  });

  it('the config validator never echoes a password with / in a URL', () => {
    try {
      loadConfig({ env: { TASKLOG__CATALOG__URL: 'mysql://u:pa/ss@host/db' } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain('pa/ss');
      expect((err as Error).message).toContain('***');
    }
  });
});
