# Sourced by gateway-load.sh: the nginx and Caddy configurations it compares, on its ports.
# shellcheck shell=bash disable=SC2154 # the variables are gateway-load.sh's

# An nginx auth_request server block on port $1 whose auth upstream is $2; the blocks differ
# only in the auth upstream.
auth_server() {
    cat <<BLOCK
    server {
        listen 127.0.0.1:$1;
        location / {
            auth_request $AUTH_PATH;
            auth_request_set \$member_id \$upstream_http_x_stytch_member_id;
            auth_request_set \$organization_id \$upstream_http_x_stytch_organization_id;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Stytch-Member-Id \$member_id;
            proxy_set_header X-Stytch-Organization-Id \$organization_id;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
        location = $AUTH_PATH {
            internal;
            proxy_pass http://$2;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI \$request_uri;
        }
    }
BLOCK
}

# nginx: worker_processes = nproc, upstream keep-alive, no access log.
nginx_conf() {
    cat <<NGINX
worker_processes $(nproc);
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream app { server 127.0.0.1:$UP_PORT; keepalive 128; }
    upstream noop_auth { server $NOOP_UPSTREAM; keepalive 128; }
    upstream our_auth { server 127.0.0.1:$GW_PORT; keepalive 128; }
    server {
        listen 127.0.0.1:$NGX_PROXY_PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
$(auth_server "$NGX_AR_NOOP_PORT" noop_auth)
$(auth_server "$NGX_AR_OURS_PORT" our_auth)
    server {
        listen 127.0.0.1:$NGX_204_PORT;
        location / { return 204; }
    }
}
NGINX
}

# Caddy's upstream transport: HTTP/1.1 keep-alive with as many idle connections as nginx's
# `keepalive 128`.
caddy_transport() {
    cat <<TRANSPORT
            transport http {
                keepalive 60s
                keepalive_idle_conns 256
                keepalive_idle_conns_per_host 128
            }
TRANSPORT
}

# A Caddy forward_auth site on port $1 whose auth service is $2; the sites differ only in it.
caddy_forward_auth() {
    cat <<SITE
http://127.0.0.1:$1 {
    bind 127.0.0.1
    forward_auth $2 {
        uri $AUTH_PATH
        copy_headers X-Stytch-Member-Id X-Stytch-Organization-Id
$(caddy_transport)
    }
    reverse_proxy 127.0.0.1:$UP_PORT {
$(caddy_transport)
    }
}
SITE
}

# Caddy (Debian's): no admin endpoint, no automatic HTTPS, no access log (its default).
caddy_conf() {
    cat <<CADDY
{
    admin off
    auto_https off
}
http://127.0.0.1:$CADDY_PROXY_PORT {
    bind 127.0.0.1
    reverse_proxy 127.0.0.1:$UP_PORT {
$(caddy_transport)
    }
}
$(caddy_forward_auth "$CADDY_FA_NOOP_PORT" "$NOOP_UPSTREAM")
$(caddy_forward_auth "$CADDY_FA_OURS_PORT" "127.0.0.1:$GW_PORT")
CADDY
}
