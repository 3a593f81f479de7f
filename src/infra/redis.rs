//! The Redis connection pool shared by the cache, the rate limits and the
//! progress fan-out.

/// A pool of Redis connections (bb8). Connections are made lazily, so a
/// Redis that is down does not stop the server.
pub type RedisPool = bb8::Pool<bb8_redis::RedisConnectionManager>;
