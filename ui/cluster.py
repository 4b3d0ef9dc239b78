"""Cluster look-ups of the reader that are not records: the processors' consumer-group lag."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from ui.store import GroupLag, TopicInfo

__all__ = ["group_lags"]


def group_lags(admin: AdminClient, prefix: str, raw: TopicInfo, timeout: float) -> list[GroupLag]:
    """Committed offsets and lag on the raw topic of every consumer group named ``prefix<version>``.

    A group that never committed on a partition lags by the whole retained partition.
    """
    listing = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout + 1)
    lags: list[GroupLag] = []
    for group in sorted(g.group_id for g in listing.valid if g.group_id.startswith(prefix)):
        request = [ConsumerGroupTopicPartitions(group)]
        futures = admin.list_consumer_group_offsets(request, request_timeout=timeout)
        result = futures[group].result(timeout=timeout + 1)
        # The end offsets were read a moment before the group's offsets: a processor that
        # committed in between is ahead of them. Shown as caught up (at the end), never above it.
        committed = {tp.partition: min(tp.offset, raw.end_offsets.get(tp.partition, tp.offset))
                     for tp in result.topic_partitions or () if tp.topic == raw.name and tp.offset >= 0}
        lag = {p: max(0, end - committed.get(p, raw.start_offsets.get(p, 0)))
               for p, end in raw.end_offsets.items()}
        lags.append(GroupLag(group=group, version=group[len(prefix):], committed=committed, lag=lag))
    return lags
