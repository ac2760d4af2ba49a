// The image's HEALTHCHECK: exits 0 when the tasklog process in this container answers
// `GET /health/live` with 200, whichever role it runs (`serve` on server.port, `agent` on
// agent.port), else 1. Liveness only: an unreachable catalog or store is `/health/ready`'s
// business, and restarting a process for it would not help.
//
// The ports come from the same variables tasklog reads (TASKLOG__SERVER__PORT,
// TASKLOG__AGENT__PORT); a port given as a flag instead needs TASKLOG_HEALTHCHECK_URL. The
// request names `localhost` as its host: with `server.allowed_hosts` set, list it there too.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const env = process.env;
const agentScheme = env.TASKLOG__AGENT__TLS_CERT ? 'https' : 'http';
const urls = env.TASKLOG_HEALTHCHECK_URL
  ? [env.TASKLOG_HEALTHCHECK_URL]
  : [
      `http://127.0.0.1:${env.TASKLOG__SERVER__PORT || 8794}/health/live`,
      `${agentScheme}://127.0.0.1:${env.TASKLOG__AGENT__PORT || 8795}/health/live`,
    ];

/** Resolves true when `url` answers 200 within 4 s. */
function live(url) {
  return new Promise((resolve) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    // The agent's own certificate names its public host, not 127.0.0.1: liveness over loopback
    // does not need to verify it.
    const req = request(
      url,
      { headers: { host: 'localhost' }, rejectUnauthorized: false },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.setTimeout(4000, () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

const answers = await Promise.all(urls.map(live));
process.exit(answers.includes(true) ? 0 : 1);
