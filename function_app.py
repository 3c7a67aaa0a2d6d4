"""Azure Functions entry point: registers triggers only. Each one hands off to callbacks/ or orchestrations/."""

import azure.durable_functions as df
import azure.functions as func

import orchestrations
from callbacks import acs_events, calls_api, eventgrid, runtime
from callbacks import health as health_route
from callbacks.activity_services import activity_services
from callbacks.replies import to_http

runtime.startup()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
orchestrations.register(app, activity_services)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return health_route.health(req)


@app.event_grid_trigger(arg_name="event")
@app.durable_client_input(client_name="client")
async def on_incoming_call(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    # The worker hands a func.CloudEvent (`type`) when the subscription uses the CloudEvents schema.
    kind = str(getattr(event, "event_type", None) or getattr(event, "type", None) or "")
    sent_at = getattr(event, "event_time", None) or getattr(event, "time", None)  # kept by redeliveries
    await eventgrid.on_incoming_event(kind, event.get_json(), client, sent_at)


@app.route(route="eventgrid/incoming-call", methods=["POST", "OPTIONS"])
@app.durable_client_input(client_name="client")
async def incoming_call_webhook(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    if req.method == "OPTIONS":
        status, headers = eventgrid.abuse_protection(req.headers.get("WebHook-Request-Origin"))
        return func.HttpResponse(status_code=status, headers=headers)
    return to_http(await eventgrid.on_incoming_http(req.get_body(), client))


@app.route(route="callbacks/{call_id}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def acs_callbacks(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return to_http(await acs_events.handle_callbacks(
        await runtime.worker(), client, req.route_params["call_id"], token=req.params.get("token"),
        authorization=req.headers.get("Authorization"), body=req.get_body()))


@app.route(route="calls/{call_id}/events/{name}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def media_host_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return to_http(await acs_events.handle_media_host_event(
        await runtime.worker(), client, req.route_params["call_id"], req.route_params["name"],
        token=req.params.get("token"), body=req.get_body()))


@app.route(route="calls", methods=["POST"])
@app.durable_client_input(client_name="client")
async def place_call(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return to_http(await calls_api.place_call(await runtime.worker(), client, req.get_body()))


@app.route(route="calls/{call_id}", methods=["GET", "DELETE"])
@app.durable_client_input(client_name="client")
async def call(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    worker, call_id = await runtime.worker(), req.route_params["call_id"]
    if req.method == "DELETE":
        return to_http(await calls_api.hang_up(worker, client, call_id))
    return to_http(await calls_api.call_status(worker, client, call_id))


@app.route(route="calls/{call_id}/transfer", methods=["POST"])
@app.durable_client_input(client_name="client")
async def transfer_call_api(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return to_http(await calls_api.transfer(await runtime.worker(), client, req.route_params["call_id"],
                                            req.get_body()))


@app.route(route="calls/{call_id}/record", methods=["GET"])
async def call_record(req: func.HttpRequest) -> func.HttpResponse:
    return to_http(await calls_api.call_record(await runtime.worker(), req.route_params["call_id"]))
