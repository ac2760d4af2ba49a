"""Airflow's Elasticsearch task handler reading one attempt, with Debian's python3-elasticsearch.

The requests of ``ElasticsearchRemoteLogIO._es_read`` and the paging and grouping of
``ElasticsearchTaskHandler._read`` (apache/airflow main, providers/elasticsearch/src/airflow/
providers/elasticsearch/log/es_task_handler.py; ``AIRFLOW_V_3_0_PLUS`` branches for 3.x), with the
request bodies Airflow's client sends. Debian 12 ships the 7.17 client: its ``search`` takes
Airflow's keyword arguments (``query``, ``sort``, ``size``, ``from_``) into the body as Airflow's
8.x client does; its ``count`` has no ``query`` argument yet, so the same body goes as ``body=``.

Usage: python3 elasticsearch-airflow-read.py '{"url": ..., "log_id": ..., "version": "2.10"}'
Prints JSON: {"client": version, "pages": [...], "offsets": [str], "end_of_log": bool}. Offsets
are printed as strings, as Airflow keeps them in its metadata (exact past 2**53).
"""

import json
import sys
from collections import defaultdict
from operator import attrgetter

import elasticsearch

TASK_LOG_FIELDS = ["timestamp", "event", "level", "chan", "logger"]
MAX_LINE_PER_PAGE = 1000


class AttributeDict:
    """The provider's ``AttributeDict``/``Hit`` (es_response.py): attribute access, AttributeError
    for a missing field, nested objects wrapped, hashed by identity."""

    def __init__(self, d):
        object.__setattr__(self, "_d_", d)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        value = self._d_[key]
        return AttributeDict(value) if isinstance(value, dict) else value

    def to_dict(self):
        return self._d_


def main() -> None:
    args = json.loads(sys.argv[1])
    client = elasticsearch.Elasticsearch(args["url"])
    index_patterns = args.get("index_patterns", "_all")
    log_id = args["log_id"]
    airflow_3 = args["version"] != "2.10"
    end_of_log_mark = args.get("end_of_log_mark", "end_of_log").strip()
    host_field = args.get("host_field", "host")
    offset_field = "offset"
    host = args.get("host", "http://localhost:9200")

    def es_read(offset):
        query = {
            "bool": {
                "filter": [{"range": {offset_field: {"gt": int(offset)}}}],
                "must": [{"match_phrase": {"log_id": log_id}}],
            }
        }
        if elasticsearch.VERSION[0] >= 8:  # Airflow's own call
            max_log_line = client.count(index=index_patterns, query=query)["count"]
        else:
            max_log_line = client.count(index=index_patterns, body={"query": query})["count"]
        if max_log_line != 0:
            res = client.search(
                index=index_patterns,
                query=query,
                sort=[offset_field],
                size=MAX_LINE_PER_PAGE,
                from_=MAX_LINE_PER_PAGE * 0,
            )
            return [AttributeDict(h["_source"]) for h in res["hits"]["hits"]]
        return None

    def getattr_nested(obj, item, default):
        try:
            return attrgetter(item)(obj)
        except AttributeError:
            return default

    def shown(host_key):
        # A host_field naming an object groups every hit apart (identity hash), as in Airflow.
        return host_key if isinstance(host_key, str) else repr(host_key.to_dict())

    metadata = {"offset": 0}
    pages = []
    offsets = []
    end_of_log = False
    for _ in range(10_000):
        hits = es_read(metadata["offset"])
        if not hits:
            break
        logs_by_host = defaultdict(list)
        for hit in hits:
            logs_by_host[getattr_nested(hit, host_field, None) or host].append(hit)
        metadata["offset"] = str(attrgetter(offset_field)(hits[-1]))
        offsets.append(metadata["offset"])
        if airflow_3:
            end_of_log = any(x[-1].event == end_of_log_mark for x in logs_by_host.values())
            header = [
                {"event": "::group::Log message source details", "sources": [shown(h) for h in logs_by_host]},
                {"event": "::endgroup::"},
            ]
            rows = [
                {k: v for k, v in hit.to_dict().items() if k.lower() in TASK_LOG_FIELDS}
                for group in logs_by_host.values()
                for hit in group
            ]
            pages.append(header + rows)
        else:
            end_of_log = any(x[-1].message == end_of_log_mark for x in logs_by_host.values())

            def concat_logs(group):
                n = len(group) - 1 if group[-1].message == end_of_log_mark else len(group)
                return "\n".join(group[i].message for i in range(n))

            pages.append([[shown(h), concat_logs(group)] for h, group in logs_by_host.items()])
        if end_of_log:
            break
    json.dump(
        {
            "client": elasticsearch.__versionstr__,
            "pages": pages,
            "offsets": offsets,
            "end_of_log": end_of_log,
        },
        sys.stdout,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
